"""The baseline the seeds use: a plain Hugging Face Trainer script for token classification on BIO
sentences (AutoModelForTokenClassification, first-subword labels), padded to 256 tokens or padded
dynamically, fp32 or bf16. Imported by throughput.py; runnable alone:

    python benchmarks/plain_hf.py --padding max_length --steps 30
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from transformers import (
    AutoModelForTokenClassification,
    AutoTokenizer,
    DataCollatorForTokenClassification,
    Trainer,
    TrainingArguments,
)

from ner_ray.data.conll import read_bio
from ner_ray.families.models import resolve_model
from ner_ray.train.accounting import ThroughputMeter
from ner_ray.train.callbacks import ThroughputCallback


def sentences(path: Path) -> tuple[list[list[str]], list[list[str]]]:
    """Tokens and BIO tags per sentence of a BIO TSV file."""
    tokens, tags = [], []
    for line_block in path.read_text().strip().split("\n\n"):
        rows = [line.split("\t") for line in line_block.splitlines()]
        tokens.append([r[0] for r in rows])
        tags.append([r[1] for r in rows])
    return tokens, tags


def encode(tokenizer, tokens, tags, label_ids, padding: str, max_length: int = 256) -> list[dict]:
    """The seeds' encoding: word tokens, label on the first subword, -100 elsewhere."""
    enc = tokenizer(tokens, is_split_into_words=True, truncation=True, max_length=max_length,
                    padding="max_length" if padding == "max_length" else False)
    rows = []
    for i in range(len(tokens)):
        previous, labels = None, []
        for word in enc.word_ids(i):
            labels.append(-100 if word is None or word == previous else label_ids[tags[i][word]])
            previous = word
        rows.append({"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i], "labels": labels})
    return rows


def run(bio_file: Path, padding: str, bf16: bool, steps: int, batch_size: int = 16, group_by_length: bool = False) -> dict:
    """Train `steps` optimizer steps; steady-state sentences/s (first 5 steps excluded) and wall seconds."""
    start = time.perf_counter()
    assert read_bio(bio_file)  # validates the file the same way the product does
    tokens, tags = sentences(bio_file)
    types = sorted({t[2:] for sent in tags for t in sent if t != "O"})
    labels = ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]
    path = resolve_model("minilm-l6")
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForTokenClassification.from_pretrained(path, num_labels=len(labels))
    rows = encode(tokenizer, tokens, tags, {label: i for i, label in enumerate(labels)}, padding)
    meter = ThroughputMeter(batch_size)
    args = TrainingArguments(
        output_dir="/tmp/plain_hf", max_steps=steps, per_device_train_batch_size=batch_size, learning_rate=1e-4,
        bf16=bf16, use_cpu=True, report_to="none", save_strategy="no", eval_strategy="no", logging_steps=50,
        train_sampling_strategy="group_by_length" if group_by_length else "random", disable_tqdm=True, seed=42,
    )
    trainer = Trainer(model=model, args=args, train_dataset=rows, callbacks=[ThroughputCallback(meter)],
                      data_collator=DataCollatorForTokenClassification(tokenizer))
    trainer.train()
    return {"padding": padding, "bf16": bf16, "group_by_length": group_by_length, "steps": steps, "batch_size": batch_size,
            "steady_sentences_per_second": meter.samples_per_second, "wall_seconds": time.perf_counter() - start,
            "threads": torch.get_num_threads()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bio", default=str(Path(__file__).resolve().parents[2] / "shared/data/ncbi_disease/conll/train.tsv"))
    parser.add_argument("--padding", choices=("max_length", "dynamic"), default="max_length")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    print(json.dumps(run(Path(args.bio), args.padding, args.bf16, args.steps), indent=2))
