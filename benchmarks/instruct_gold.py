"""The ceiling of family instruct's scoring protocols: every test window's gold answer (what training teaches), read
back as if the model had written it and scored like any output. Strict span F1 below 1.0 counts what placing listed
mentions at their occurrences cannot express (an annotated mention that also occurs unannotated, an occurrence nested
in a longer listed mention); CID F1 below 1.0 what naming pairs by mentions cannot (concepts sharing a mention).

    python benchmarks/instruct_gold.py --corpus bc5cdr --split test
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import record

from ner_ray.config import StudyConfig
from ner_ray.families.generative import IGNORE
from ner_ray.inference.decode import predicted_documents
from ner_ray.inference.encode import encode_documents
from ner_ray.inference.evaluate import corpus_documents, score_documents, strip_gold
from ner_ray.registry import FAMILIES

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--corpus", default="bc5cdr")
    parser.add_argument("--split", default="test")
    parser.add_argument("--model", default="smollm2-135m", help="the tokenizer and chat template the answers are written in")
    parser.add_argument("--max-length", type=int, default=1024)
    args = parser.parse_args()
    os.environ["NER_RAY_DATA"] = args.data_dir
    gold, types = corpus_documents(args.corpus, args.split)
    config = StudyConfig.model_validate({"model": {"name": args.model, "family": "instruct", "lora": {}},
                                         "data": {"max_length": args.max_length}})
    family = FAMILIES.get("instruct")(config, types)
    answered = encode_documents(gold, family)  # evaluation windows, their gold placed in them: the answers to write
    bare = [strip_gold(d) for d in gold]
    rows = [family.generated_row(e.features["input_ids"][e.features["prompt_length"]:]) for e in answered]
    pad = torch.nn.utils.rnn.pad_sequence
    rows = (pad([r[0] for r in rows], batch_first=True, padding_value=IGNORE),
            pad([r[1] for r in rows], batch_first=True, padding_value=IGNORE))
    predicted = predicted_documents(family, bare, encode_documents(bare, family), rows)
    scores = {**score_documents(gold, predicted, family.types), **family.extra_metrics(gold, predicted)}
    keys = ("f1", "precision", "recall", "tp", "fp", "fn", "mention_f1", "cid_f1", "cid_precision", "cid_recall",
            "cid_unmapped_rate", "hallucination_rate", "duplicate_rate")
    result = {"corpus": args.corpus, "split": args.split, "documents": len(gold), "windows": len(answered) // len(family.tasks),
              "span_f1_per_type": {t: v["f1"] for t, v in scores["per_type"].items()}, **{k: scores[k] for k in keys}}
    record(f"Instruct protocols' ceiling: gold answers scored ({args.corpus} {args.split})", result)


if __name__ == "__main__":
    main()
