"""Instruction SFT quality: SmolLM2-135M-Instruct with LoRA (family instruct, the three BC5CDR tasks in one adapter),
trained once through the `ner-ray train` path users run (search_spaces/instruct_cdr.yaml with its CPU overrides) and
scored on test: strict span F1 per type, mention-set F1 per type, CID pair F1, invalid / hallucination / duplicate /
truncation rates. On this 2-core CPU (about 200 training tokens/s, abstracts of ~380 tokens per task) the full
training set takes ~50 min an epoch and greedy scoring of a full split ~40 min, so --train-docs / --dev-docs /
--test-docs cut the splits to their first N documents (written as a PubTator corpus under --output-dir); 0 keeps all.

    python benchmarks/instruct.py --train-docs 150 --dev-docs 40 --test-docs 100 --epochs 2 --lr 5e-4
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus_cut import cut_corpus  # noqa: E402
from record import record  # noqa: E402

from ner_ray.config import load_study  # noqa: E402
from ner_ray.train.run import train_experiment  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NAME = "instruct-bc5cdr"
RATES = ("invalid_rate", "hallucination_rate", "duplicate_rate", "truncated_rate", "cid_unmapped_rate")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--train-docs", type=int, default=0)
    parser.add_argument("--dev-docs", type=int, default=0)
    parser.add_argument("--test-docs", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--r", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--grad-accum", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output-dir", default="runs/bench_instruct")
    parser.add_argument("--reuse", action="store_true", help="a run already trained in --output-dir (its metrics.json) "
                        "is reported again, not retrained")
    args = parser.parse_args()
    os.environ["NER_RAY_DATA"] = args.data_dir
    out = Path(args.output_dir)
    corpus = cut_corpus("bc5cdr", {"train": args.train_docs, "dev": args.dev_docs, "test": args.test_docs}, out / "corpus")
    config = load_study(ROOT / "search_spaces" / "instruct_cdr.yaml").resolve("instruct_cdr").with_updates({
        "model.name": "smollm2-135m", "model.quantize": None, "model.backend": "peft", "resources.use_gpu": False,
        "resources.cpus_per_worker": os.cpu_count() or 1, "data.corpus": str(corpus), "data.format": "pubtator",
        "train.epochs": args.epochs, "train.lr": args.lr, "model.lora.r": args.r, "model.lora.alpha": 2 * args.r,
        "train.batch_size": args.batch_size, "train.grad_accum": args.grad_accum, "train.seed": args.seed,
        "train.gradient_checkpointing": False, "train.output_dir": str(out), "search": {},
        "tune.searcher.points_to_evaluate": [], "tracking.enabled": False})
    trained = out / NAME / "metrics.json"
    metrics = json.loads(trained.read_text()) if args.reuse and trained.is_file() else train_experiment(config, NAME, out)
    test = metrics["test"]
    result = {
        "model": f"smollm2-135m (SmolLM2-135M-Instruct), LoRA r{args.r} alpha {2 * args.r} all-linear",
        "documents": {"train": args.train_docs or "all", "dev": args.dev_docs or "all", "test": args.test_docs or "all"},
        "train_precision": metrics.get("train_precision"), "epochs": args.epochs, "lr": args.lr,
        "test_span_f1": test["f1"], "test_span_f1_per_type": {t: v["f1"] for t, v in test["per_type"].items()},
        "test_untyped_f1": test["untyped"]["f1"], "test_overlap_f1": test["overlap"]["f1"],
        "test_mention_f1": test.get("mention_f1"),
        "test_mention_f1_per_type": {k[len("mention_f1_"):]: v for k, v in test.items() if k.startswith("mention_f1_")},
        "test_cid_f1": test.get("cid_f1"), "test_cid_precision": test.get("cid_precision"),
        "test_cid_recall": test.get("cid_recall"), **{f"test_{k}": test.get(k) for k in RATES},
        "dev_f1": metrics["dev_f1"], "dev_cid_f1": metrics.get("dev_cid_f1"), "train_seconds": metrics["train_seconds"],
    }
    per_type = result["test_span_f1_per_type"]
    table = ("| protocol | Chemical | Disease | all |\n|---|---|---|---|\n"
             f"| strict span F1 | {per_type.get('Chemical', 0):.3f} | {per_type.get('Disease', 0):.3f} | {test['f1']:.3f} |\n"
             f"| mention-set F1 | {result['test_mention_f1_per_type'].get('Chemical', 0):.3f} | "
             f"{result['test_mention_f1_per_type'].get('Disease', 0):.3f} | {result['test_mention_f1'] or 0:.3f} |\n"
             f"| CID pair F1 | | | {result['test_cid_f1'] or 0:.3f} |")
    record("Instruction SFT (family instruct) on BC5CDR, SmolLM2-135M-Instruct", result, table)


if __name__ == "__main__":
    main()
