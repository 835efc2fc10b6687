"""`ner-ray train STUDY.yaml --experiment NAME key=value`: a tiny study file end to end through Ray Train
(metrics.json per seed, the comparison table with mean ± std over repeats), and a bad experiment name
failing before anything trains.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import local_ray
from test_families import build_tiny_bert

from ner_ray.cli import main
from ner_ray.comparison import comparison_table

REQUIRED = {"dev_f1", "test_f1", "test_precision", "test_recall", "test", "train_seconds", "peak_memory_mb",
            "trainable_percent", "train_samples_per_second", "train_precision"}


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray for the module (`ner-ray train` reuses a running Ray instead of starting its own)."""
    env = {"RAY_TRAIN_V2_ENABLED": "1", "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.25"}  # see test_ray_train.py
    with local_ray(env):
        yield


def write_study(folder: Path, model: Path) -> Path:
    output_dir = folder / "runs"
    path = folder / "study.yaml"
    path.write_text(f"""\
name: tiny
data: {{corpus: demo, max_length: 64}}
model: {{name: {model}}}
train: {{epochs: 1, batch_size: 16, lr: 1.0e-3, precision: fp32, output_dir: {output_dir}}}
experiments:
  - name: full
  - name: lora
    model: {{lora: {{r: 4, alpha: 8}}}}
""")
    return path


def test_train_writes_metrics_per_seed_and_prints_mean_and_std(ray_session, tmp_path, capsys, monkeypatch):
    study = write_study(tmp_path, build_tiny_bert(tmp_path / "tiny-bert"))
    assert main(["train", str(study), "--experiment", "full", "train.repeats=2"]) == 0

    runs = []
    for seed in (42, 43):
        folder = tmp_path / "runs" / "full" / f"seed{seed}"
        metrics = json.loads((folder / "metrics.json").read_text())
        assert REQUIRED <= metrics.keys()
        assert metrics["experiment"] == "full" and metrics["seed"] == seed
        assert (folder / "model" / "ner_ray.json").is_file()
        runs.append(metrics)
    assert not (tmp_path / "runs" / "lora").exists()  # --experiment trains that experiment only

    table = comparison_table(runs)
    assert table.splitlines()[2].startswith("full (n=2) | ") and "±" in table.splitlines()[2]
    assert table in capsys.readouterr().out
    report = (tmp_path / "runs" / "report.md").read_text()
    assert table in report and "![test F1 vs trainable parameters](f1_vs_trainable.png)" in report
    assert (tmp_path / "runs" / "f1_vs_trainable.png").stat().st_size > 1000
    assert "| full | 43 | " in report and "fp32" in report
    (tmp_path / "runs" / "report.md").unlink()
    assert main(["report", str(tmp_path / "runs")]) == 0  # rendered again from the runs' metrics.json alone
    assert (tmp_path / "runs" / "report.md").read_text() == report

    # --resume reads back the seeds that finished with this very config, trains the ones that did not
    import ner_ray.train.run

    trained = []

    def fake_training(config, name, output_dir, repeat=False):
        trained.append((name, config.train.seed, config.train.lr))
        return {**runs[0], "seed": config.train.seed}

    monkeypatch.setattr(ner_ray.train.run, "train_experiment", fake_training)
    assert main(["train", str(study), "--experiment", "full", "train.repeats=3", "--resume"]) == 0
    assert trained == [("full", 44, 1.0e-3)]  # seeds 42 and 43 read back: repeats says how many seeds only
    assert main(["train", str(study), "--experiment", "full", "train.repeats=2", "train.lr=2e-3", "--resume"]) == 0
    assert trained[1:] == [("full", 42, 2.0e-3), ("full", 43, 2.0e-3)]  # another config: trained again


def test_report_of_a_folder_without_runs_says_what_it_looked_for(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {tmp_path}: neither a Tune study's results.json") and "metrics.json" in error


def test_unknown_experiment_fails_before_training(tmp_path, capsys, monkeypatch):
    import ner_ray.train.run

    def no_training(*args, **kwargs):
        raise AssertionError("trained despite a bad experiment name")

    monkeypatch.setattr(ner_ray.train.run, "train_repeats", no_training)
    study = write_study(tmp_path, tmp_path / "no-model-needed")
    assert main(["train", str(study), "--experiment", "ful"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: study 'tiny' has no experiment 'ful'") and "full" in error
    assert not (tmp_path / "runs").exists()
