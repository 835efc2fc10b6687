"""Where everything ner_ray writes lies on disk: the one module that spells a file name.

A study's `train.output_dir`:
  <experiment>/[seed<k>/]model/         an exported model (`ner-ray train`; a Tune study's best trial)
  <experiment>/[seed<k>/]metrics.json   a `ner-ray train` run's final metrics
  report.md, f1_vs_trainable.png        the comparison report (`ner-ray train`'s runs, or a Tune study's trials)
  results.json, study.json, study.yaml  a Tune study's record
  mlflow.db, mlartifacts/               the default MLflow store
  tune/<study id>/<experiment>/[train/] Tune's experiments (and their trials' Ray Train runs, checkpoints)
  ray/                                  `ner-ray train`'s Ray Train runs
A model folder:
  ner_ray.json      family, entity types, precision, config, and what the family's save returned
  tokenizer/        the family's tokenizer
  ...               the family's weights (safetensors)
  predictions.pubtator   the model's predictions on the test split, beside the gold text
  final_report.json      the final report of the training run that exported it (a restarted run reports it again)
`ner-ray evaluate MODEL_DIR CORPUS --out DIR`: scores.json and predictions.pubtator.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ner_ray.data.textio import write_text_atomic

MODEL_DIR = "model"
MODEL_META = "ner_ray.json"
TOKENIZER_DIR = "tokenizer"
PREDICTIONS = "predictions.pubtator"
FINAL_REPORT = "final_report.json"
METRICS = "metrics.json"
SCORES = "scores.json"
RESULTS = "results.json"
REPORT = "report.md"
PLOT = "f1_vs_trainable.png"
STUDY_STATE = "study.json"
STUDY_CONFIGS = "study.yaml"
MLFLOW_DB = "mlflow.db"
MLFLOW_ARTIFACTS = "mlartifacts"
TUNE_DIR = "tune"
TRIAL_RUNS_DIR = "train"  # in a Tune experiment's folder: every trial's Ray Train run
TRAIN_RUNS_DIR = "ray"  # in `ner-ray train`'s output folder: its Ray Train runs
STUDY_FILES = (RESULTS, REPORT, PLOT, STUDY_CONFIGS)  # what a study's MLflow parent run carries


def run_dir(output_dir: str | Path, experiment: str, seed: int | None = None) -> Path:
    """The folder of one experiment's run (of one seed, when an experiment repeats over seeds)."""
    folder = Path(output_dir) / experiment
    return folder / f"seed{seed}" if seed is not None else folder


def best_model_id(results: dict[str, Any], study_dir: str | Path) -> str:
    """The model id `ner-ray serve STUDY_DIR` serves a study's best model under: <study>:<experiment>."""
    return f"{results.get('study', Path(study_dir).name)}:{results['best']['experiment']}"


def read_model_meta(directory: str | Path) -> dict[str, Any]:
    """The metadata of a saved model; a FileNotFoundError naming the folder when it is not one."""
    path = Path(directory) / MODEL_META
    if not path.is_file():
        raise FileNotFoundError(f"{directory} is no saved ner_ray model: {MODEL_META} is missing (ner-ray train and "
                                "Tune studies write model folders under train.output_dir/<experiment>/model)")
    return json.loads(path.read_text(encoding="utf-8"))


def write_json(path: str | Path, payload: Any) -> Path:
    """Write JSON whole or not at all (numpy scalars as numbers)."""
    return write_text_atomic(path, json.dumps(payload, indent=2, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy and torch scalars
        return value.item()
    return str(value)
