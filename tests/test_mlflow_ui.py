"""The MLflow UI shows what a real study logged: a tiny study (`python -m ner_ray.tune`, two trials on a tiny
BERT) writes its store, `mlflow ui` serves it on loopback, and headless Chromium (Debian's chromium +
chromium-driver, driven by Selenium) opens the comparison of its trial runs: every trial's run name and its
last dev F1 appear.

tests/mlflow_browser.py drives the browser (docs/images/mlflow_compare.png is taken with it, from the
quickstart study's store).
"""

from __future__ import annotations

import json
from pathlib import Path

from conftest import local_ray
from mlflow_browser import CHROMEDRIVER, CHROMIUM, screenshot
from test_families import build_tiny_bert

from ner_ray.cli import main


def write_study(folder: Path, model: Path) -> Path:
    path = folder / "study.yaml"
    path.write_text(f"""\
name: ui_study
data: {{corpus: demo, max_length: 64, test_split: null}}
model: {{name: {model}, lora: {{r: 4, alpha: 8}}}}
train: {{max_steps: 4, eval_steps: 2, batch_size: 8, lr: 1.0e-2, precision: fp32, output_dir: {folder / 'out'}}}
search:
  train.lr: {{choice: [1.0e-2, 3.0e-3]}}
tune:
  num_samples: 2
  max_concurrent_trials: 1
  scheduler: {{name: fifo}}
  searcher: {{name: random, seed: 0}}
""")
    return path


def test_mlflow_ui_shows_the_trials_a_real_study_logged(tmp_path):
    from mlflow import MlflowClient

    assert Path(CHROMEDRIVER).is_file() and Path(CHROMIUM).is_file(), \
        "Debian packages chromium and chromium-driver are needed (.ci/run installs them)"
    with local_ray({"RAY_TRAIN_V2_ENABLED": "1", "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.25"}):
        assert main(["tune", str(write_study(tmp_path, build_tiny_bert(tmp_path / "tiny-bert")))]) == 0
    out = tmp_path / "out"
    trials = json.loads((out / "results.json").read_text())["trials"]
    assert len(trials) == 2 and all(t["status"] == "completed" for t in trials)
    assert all(t["test_f1"] is None and t["test_per_type"] is None for t in trials)  # no test split: no test scores, not dev
    uri = f"sqlite:///{out / 'mlflow.db'}"
    client = MlflowClient(uri)
    runs = {r.data.tags["ner_ray.trial_id"]: r for r in client.search_runs([client.get_experiment_by_name("ui_study").experiment_id])
            if r.data.tags.get("ner_ray.role") == "trial"}
    assert set(runs) == {t["trial_id"] for t in trials}

    shot = tmp_path / "mlflow_compare.png"
    body = screenshot(uri, "ui_study", shot, CHROMIUM, CHROMEDRIVER)
    assert "dev_f1" in body
    for run in runs.values():
        assert run.info.run_name in body  # every trial's run is in the comparison
        last = max(client.get_metric_history(run.info.run_id, "dev_f1"), key=lambda m: (m.step, m.timestamp)).value
        assert any(token.startswith(f"{last:.2f}") for token in body.split()), (last, body[:2000])  # with its dev F1
    assert shot.read_bytes().startswith(b"\x89PNG")
