"""The README's main job, timed as a user runs it: `python -m ner_ray.tune search_spaces/quickstart.yaml` in a
fresh process (its own local Ray), from a clean output folder; wall seconds, the trials and how each ended,
and the MLflow runs it left.

    python benchmarks/quickstart.py
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import record  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    output = ROOT / "runs" / "quickstart"
    shutil.rmtree(output, ignore_errors=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ner_ray.tune", "search_spaces/quickstart.yaml"], cwd=ROOT, check=True)
    wall = time.perf_counter() - start
    results = json.loads((output / "results.json").read_text())
    trials = [{k: t[k] for k in ("trial_id", "params", "status", "evaluations", "dev_f1", "test_f1", "seconds", "train_precision")}
              for t in results["trials"]]
    from mlflow import MlflowClient

    client = MlflowClient(results["mlflow"]["tracking_uri"])
    runs = client.search_runs([client.get_experiment_by_name("quickstart").experiment_id])
    result = {"wall_seconds": wall, "trials": trials, "best": {k: results["best"][k] for k in ("trial_id", "dev_f1", "test_f1")},
              "mlflow_runs": {"study": sum(r.data.tags.get("ner_ray.role") == "study" for r in runs),
                              "trial": sum(r.data.tags.get("ner_ray.role") == "trial" for r in runs)}}
    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    rows = [f"| {t['trial_id']} | {json.dumps(t['params'])} | {t['status']} | {t['evaluations']} | {cell(t['dev_f1'])} | "
            f"{cell(t['test_f1'])} | {t['seconds']:.0f} |" for t in trials]
    precision = ", ".join(sorted({t["train_precision"] for t in trials if t["train_precision"]}))
    table = "\n".join([f"wall {wall:.0f} s for {len(trials)} trials ({precision}); MLflow: {result['mlflow_runs']['study']} parent "
                       f"and {result['mlflow_runs']['trial']} nested runs", "",
                       "| trial | params | status | evaluations | dev F1 | test F1 | seconds |",
                       "| --- | --- | --- | ---: | ---: | ---: | ---: |", *rows])
    record("Tune: the quickstart study (README main job, demo corpus)", result, table)


if __name__ == "__main__":
    main()
