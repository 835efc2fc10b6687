"""Quality: minilm-l6 on a corpus (full train split, model picked on dev, scored on test with windows cut
from the text alone) for full fine-tuning, LoRA r16 and LoRA r16 + CRF, through the same `ner-ray train`
path users run; one seed (train.seed) per experiment, at the precision `train.precision: auto` picks here.

    python benchmarks/quality.py --corpus ncbi_disease --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import record  # noqa: E402

from ner_ray.comparison import comparison_table  # noqa: E402
from ner_ray.config import StudyConfig  # noqa: E402
from ner_ray.train.run import train_experiment  # noqa: E402

EXPERIMENTS = {
    "full": {"model": {"lora": None}, "train": {"lr": 1e-4}},
    "lora-r16": {"model": {"lora": {"r": 16, "alpha": 32, "dropout": 0.1}}, "train": {"lr": 5e-4}},
    "lora-r16-crf": {"model": {"family": "crf", "lora": {"r": 16, "alpha": 32, "dropout": 0.1}}, "train": {"lr": 5e-4}},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", default="ncbi_disease")
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8, help="windows per step (8 is the HF Trainer default the plain script used)")
    parser.add_argument("--only", nargs="*", help="experiment names to run (default: all)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output-dir", default="runs/bench_quality")
    args = parser.parse_args()
    os.environ["NER_RAY_DATA"] = args.data_dir
    runs = []
    for name, settings in EXPERIMENTS.items():
        if args.only and name not in args.only:
            continue
        config = StudyConfig.model_validate({
            "data": {"corpus": args.corpus, "max_length": args.max_length},
            "model": {"name": "minilm-l6", "family": settings["model"].get("family", "token_cls"), "lora": settings["model"]["lora"]},
            "train": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": settings["train"]["lr"], "seed": args.seed,
                      "output_dir": args.output_dir},
            "resources": {"num_workers": 1, "cpus_per_worker": 2},
        })
        metrics = train_experiment(config, f"{args.corpus}-{name}", Path(args.output_dir))
        runs.append({**metrics, "experiment": name})
    summary = {r["experiment"]: {**{k: r[k] for k in ("test_f1", "test_precision", "test_recall", "dev_f1", "seed", "train_precision",
                                                       "train_seconds", "peak_memory_mb", "trainable_percent",
                                                       "steady_samples_per_second")},
                                 "test": {k: r["test"][k] for k in ("per_type", "gold_crossing_windows", "tp", "fp", "fn")}}
               for r in runs}
    precision = ", ".join(sorted({r["train_precision"] for r in runs}))
    record(f"Quality: minilm-l6 on {args.corpus} (test entity F1, strict, model picked on dev; {args.epochs} epochs, "
           f"batch {args.batch_size}, {args.max_length}-token windows; seed {args.seed}, {precision})",
           summary, "```\n" + comparison_table(runs) + "\n```")


if __name__ == "__main__":
    main()
