"""A study's best model scored through a running service (`ner-ray evaluate --endpoint URL CORPUS --study DIR`),
recorded beside the in-process scores: an entry of results.json's `served` list, and `served_<split>_*` metrics with
the scores JSON as an artifact on the best trial's MLflow run. The service must serve that model (`ner-ray serve
STUDY_DIR` names it `<study>:<experiment>`): scores of another model are refused, not recorded.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

from ner_ray.artifacts import RESULTS, best_model_id, write_json
from ner_ray.credentials import redact
from ner_ray.tune.tracking import STUDY_TAG, TRIAL_TAG


def study_results(study_dir: str | Path) -> dict[str, Any]:
    path = Path(study_dir) / RESULTS
    if not path.is_file():
        raise FileNotFoundError(f"{study_dir} is no study folder: {RESULTS} is missing (run `python -m ner_ray.tune` first)")
    results = json.loads(path.read_text(encoding="utf-8"))
    if not results.get("best"):
        raise ValueError(f"{path}: no trial completed with {results.get('metric')}, so there is no best model to score")
    return results


def check_served(study_dir: str | Path, served: list[str]) -> None:
    """Refuse when the service (its /v1/models ids `served`) does not serve the study's best model."""
    expected = best_model_id(study_results(study_dir), study_dir)
    if expected not in served:
        raise ValueError(f"the service serves {', '.join(served) or 'no model'}, not the best model of {study_dir} "
                         f"({expected}): start it with `ner-ray serve {study_dir}`")


def record_served(study_dir: str | Path, result: dict[str, Any]) -> dict[str, Any]:
    """Add `result` (evaluate_endpoint's scores) to the study's results.json (one entry per endpoint, corpus and split:
    a rerun replaces its entry; a resumed study keeps the list, each entry naming its trial) and to the best trial's MLflow run where the study tracked one; returns the entry."""
    results = study_results(study_dir)
    split = result["split"]
    entry = {"endpoint": redact(result["endpoint"]), "model": best_model_id(results, study_dir), "trial_id": results["best"].get("trial_id"),
             "corpus": result["corpus"], "split": split,
             "types": result["types"], "inference_precision": result["inference_precision"],
             **{f"{split}_{k}": result[f"{split}_{k}"] for k in ("f1", "precision", "recall")},
             "documents": result[split]["documents"], "engine": result.get("engine"),
             "scored_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
    mlflow = results.get("mlflow") or {}
    if mlflow.get("tracking_uri") and mlflow.get("parent_run_id"):
        entry["mlflow_run_id"] = log_to_trial_run(mlflow["tracking_uri"], mlflow["parent_run_id"], results, result)
    same = (entry["endpoint"], entry["corpus"], split)
    kept = [e for e in results.get("served") or [] if (e["endpoint"], e["corpus"], e["split"]) != same]
    write_json(Path(study_dir) / RESULTS, {**results, "served": [*kept, entry]})
    return entry


def log_to_trial_run(uri: str, parent_run_id: str, results: dict[str, Any], result: dict[str, Any]) -> str | None:
    """Log `served_<split>_f1/_precision/_recall` and the scores JSON on the best trial's run; its id (None: not found)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    parent = client.get_run(parent_run_id)
    found = client.search_runs([parent.info.experiment_id], f"tags.`{TRIAL_TAG}` = '{results['best']['trial_id']}' and "
                               f"tags.`{STUDY_TAG}` = '{parent.data.tags.get(STUDY_TAG, '')}'", max_results=1)
    if not found:
        return None
    run_id, split = found[0].info.run_id, result["split"]
    for key in ("f1", "precision", "recall"):
        client.log_metric(run_id, f"served_{split}_{key}", float(result[f"{split}_{key}"]))
    client.log_dict(run_id, result, f"served/{Path(result['corpus']).name}-{split}.json")
    return run_id
