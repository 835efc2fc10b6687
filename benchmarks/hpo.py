"""HPO efficiency: the full 18-configuration grid (lr {1e-4, 2e-4, 3e-4} x LoRA rank {4, 8, 16} x dropout
{0.05, 0.1}) against ASHA + Optuna on the same space with the same epoch budget per trial, on NCBI-disease
with minilm-l6 LoRA; best dev F1 (the best trial's test F1 beside it: selection on dev only), total
trial-epochs and wall time of each. Also Tune's per-trial overhead
(trial start -> first report) from a study of near-empty trials.

    python benchmarks/hpo.py --data-dir ../shared/data [--subsample N] [--epochs 3] [--batch-size 16]
                             [--samples 8] [--concurrency 2]
    python benchmarks/hpo.py --overhead-only

Target: ASHA + Optuna within 0.01 dev F1 of the grid's best with <= 35% of its trial-epochs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import record

from ner_ray.tune.study_runner import run_study

SPACE = {"train.lr": [1e-4, 2e-4, 3e-4], "model.lora.r": [4, 8, 16], "model.lora.dropout": [0.05, 0.1]}


def study_file(folder: Path, name: str, body: dict) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, **body}, sort_keys=False))
    return path


def base(args, output_dir: Path) -> dict:
    return {
        "data": {"corpus": "ncbi_disease", "max_length": args.max_length, "subsample": args.subsample},
        "model": {"name": "minilm-l6", "lora": {"r": 8, "alpha": 16, "dropout": 0.1}, "head": {"lr_multiplier": 10.0}},
        "train": {"epochs": args.epochs, "batch_size": args.batch_size, "evals_per_epoch": 1,
                  "output_dir": str(output_dir)},
        "resources": {"cpus_per_worker": 1},  # with --concurrency 2: two trials share 2 cores, 1 thread each
    }


def summarize(results: dict, wall: float) -> dict:
    trials = results["trials"]
    ranked = [t for t in trials if t.get("dev_f1") is not None]
    best = max(ranked, key=lambda t: t["dev_f1"])
    return {"trials": len(trials), "best_dev_f1": best["dev_f1"], "best_params": best["params"],
            "best_test_f1": best.get("test_f1"), "trial_epochs": sum(float(t.get("epochs") or 0) for t in trials),
            "wall_seconds": wall, "stopped_early": sum(t["status"] == "early_stopped" for t in trials)}


def run(path: Path, overrides: list[str] = ()) -> tuple[dict, float]:
    start = time.perf_counter()
    results = run_study(path, overrides)
    return results, time.perf_counter() - start


def overhead(folder: Path) -> dict:
    """Trials of a few optimizer steps on the demo corpus: trial start -> first report is nearly all overhead."""
    path = study_file(folder, "overhead", {
        "data": {"corpus": "demo", "max_length": 64, "test_split": None},
        "model": {"name": "minilm-l6", "lora": {"r": 4, "alpha": 8}},
        "train": {"max_steps": 2, "eval_steps": 1, "batch_size": 4, "output_dir": str(folder / "overhead")},
        "search": {"train.lr": {"choice": [1e-4, 2e-4, 3e-4]}},
        "tune": {"num_samples": 3, "max_concurrent_trials": 1, "scheduler": {"name": "fifo"}, "searcher": {"name": "random", "seed": 0}},
        "tracking": {"enabled": False},
    })
    results, wall = run(path)
    firsts = [t["first_report_seconds"] for t in results["trials"]]
    return {"first_report_seconds": firsts, "mean_first_report_seconds": sum(firsts) / len(firsts), "study_wall_seconds": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--subsample", type=int, default=None, help="first N training documents (default: all)")
    parser.add_argument("--epochs", type=int, default=3, help="epoch budget of every trial")
    parser.add_argument("--batch-size", type=int, default=16, help="per trial; smaller: more updates per epoch")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--samples", type=int, default=8, help="ASHA + Optuna trials")
    parser.add_argument("--startup-trials", type=int, default=4, help="Optuna's random trials before TPE")
    parser.add_argument("--concurrency", type=int, default=2, help="trials at once, 1 CPU each (both searches)")
    parser.add_argument("--output-dir", default="runs/bench_hpo")
    parser.add_argument("--overhead-only", action="store_true")
    args = parser.parse_args()
    os.environ["NER_RAY_DATA"] = args.data_dir
    folder = Path(args.output_dir).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    result: dict = {"tune_overhead": overhead(folder)}
    if not args.overhead_only:
        grid_path = study_file(folder, "grid", {**base(args, folder / "grid"),
            "search": {key: {"grid": values} for key, values in SPACE.items()},
            "tune": {"num_samples": 1, "max_concurrent_trials": args.concurrency, "scheduler": {"name": "fifo"},
                     "searcher": {"name": "grid"}}})
        asha_path = study_file(folder, "asha_optuna", {**base(args, folder / "asha_optuna"),
            "search": {key: {"choice": values} for key, values in SPACE.items()},
            "tune": {"num_samples": args.samples, "max_concurrent_trials": args.concurrency,
                     "scheduler": {"name": "asha", "grace_period": 1, "reduction_factor": 3},
                     "searcher": {"name": "optuna", "seed": 0, "startup_trials": args.startup_trials}}})
        grid = summarize(*run(grid_path))
        asha = summarize(*run(asha_path))
        result.update(grid=grid, asha_optuna=asha, f1_gap=grid["best_dev_f1"] - asha["best_dev_f1"],
                      trial_epoch_ratio=asha["trial_epochs"] / grid["trial_epochs"])
    table = ""
    if "grid" in result:
        rows = [f"| {name} | {r['trials']} | {r['best_dev_f1']:.4f} | {r['best_test_f1']:.4f} | {r['trial_epochs']:.1f} | "
                f"{r['wall_seconds']:.0f} |" for name, r in (("grid (18 configs)", result["grid"]), ("ASHA + Optuna", result["asha_optuna"]))]
        table = "\n".join(["| search | trials | best dev F1 | its test F1 | trial-epochs | wall s |",
                           "| --- | ---: | ---: | ---: | ---: | ---: |", *rows,
                           "", f"F1 gap {result['f1_gap']:+.4f}; trial-epochs ratio {result['trial_epoch_ratio']:.2f}"])
    table += f"\n\nTune per-trial overhead (trial start -> first report, 2-step trials): " \
             f"{result['tune_overhead']['mean_first_report_seconds']:.1f} s"
    scope = "all training documents" if args.subsample is None else f"first {args.subsample} training documents, full dev"
    record(f"HPO efficiency: grid vs ASHA + Optuna (NCBI-disease, {scope}, minilm-l6 LoRA, {args.epochs} epochs "
           f"per trial, batch {args.batch_size})",
           result, table)


if __name__ == "__main__":
    main()
