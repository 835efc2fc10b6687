"""`python -m ner_ray.tune` end to end on a tiny BERT: ASHA + Optuna trials as Ray Train runs, a worker killed
mid-trial, results.json, the report, MLflow parent and nested runs (local SQLite store and a real
`mlflow server`), and an interrupted study finished by --resume with no trial run twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import kill_worker_after_first_checkpoint, local_ray
from test_families import build_tiny_bert

from ner_ray.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


def write_study(folder: Path, model: Path, scheduler: str, extra: str = "") -> Path:
    path = folder / "study.yaml"
    path.write_text(f"""\
name: tiny_search
data: {{corpus: demo, max_length: 64}}
model: {{name: {model}, lora: {{r: 4, alpha: 8}}}}
train: {{epochs: 3, evals_per_epoch: 2, batch_size: 8, lr: 1.0e-3, precision: fp32, output_dir: {folder / 'out'}}}
search:
  train.lr: {{loguniform: [1.0e-4, 1.0e-2]}}
  model.lora.r: {{choice: [2, 4]}}
tune:
  num_samples: 3
  max_concurrent_trials: 1
  max_failures: 1
  scheduler: {{name: {scheduler}, grace_period: 2, reduction_factor: 2}}
  searcher: {{name: optuna, seed: 0, points_to_evaluate: [{{train.lr: 1.0e-3, model.lora.r: 4}}]}}
{extra}""")
    return path


def mlflow_runs(uri: str, experiment: str = "tiny_search"):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id])
    parents = [r for r in runs if r.data.tags.get("ner_ray.role") == "study"]
    trials = [r for r in runs if r.data.tags.get("ner_ray.role") == "trial"]
    return client, parents, trials


def test_two_one_cpu_trials_train_at_once_on_two_cpus(tmp_path):
    """A trial's driver reserves no CPU, so two trials whose workers take 1 CPU each run side by side on
    2 CPUs (with 0.01 CPU per driver the second worker waited for the first, and a Train worker group
    timed out). The trial starts its worker outside the trial's placement group, as Ray Train's controller does."""
    import ray
    from ray import tune

    from ner_ray.tune.study_runner import TRIAL_DRIVER_RESOURCES

    @ray.remote(num_cpus=1)
    def worker() -> float:
        started = time.time()
        time.sleep(2)
        return started

    def trial(config):
        tune.report({"started": ray.get(worker.options(scheduling_strategy="DEFAULT").remote())})

    with local_ray({}):
        results = tune.Tuner(tune.with_resources(trial, TRIAL_DRIVER_RESOURCES),
                             param_space={"x": tune.grid_search([1, 2])},
                             tune_config=tune.TuneConfig(max_concurrent_trials=2),
                             run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0)).fit()
    starts = sorted(r.metrics["started"] for r in results)
    assert len(starts) == 2 and starts[1] - starts[0] < 1.5  # the second worker did not wait for the first


def test_study_with_asha_and_a_killed_worker(tiny, tmp_path, capsys):
    study = write_study(tmp_path, tiny, "asha")
    out = tmp_path / "out"
    killed: list[int] = []
    stop = threading.Event()
    env = {"RAY_TRAIN_V2_ENABLED": "1", "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.25"}
    with local_ray(env):
        # the first trial's worker dies after its first checkpoint; FailureConfig restarts it from there
        killer = threading.Thread(target=kill_worker_after_first_checkpoint, daemon=True,
                                  args=(out / "tune", killed, stop, "*/tiny_search/train/*/checkpoint_manager_snapshot.json"))
        killer.start()
        try:
            assert main(["tune", str(study)]) == 0
        finally:
            stop.set()
            killer.join()
    printed = capsys.readouterr().out
    assert "exp " in printed and "| dev f1 |" in printed and "MLflow: parent run" in printed

    results = json.loads((out / "results.json").read_text())
    trials = results["trials"]
    assert len(trials) == 3 and len({t["trial_id"] for t in trials}) == 3
    assert {t["status"] for t in trials} <= {"completed", "early_stopped"}
    first = trials[0]
    assert first["params"] == {"train.lr": 1e-3, "model.lora.r": 4}  # the known point runs first
    assert first["status"] == "completed" and 0 <= first["test_f1"] <= 1 and first["evaluations"] == 6
    assert len(killed) == 1 and first["resumed_from_step"] > 0  # killed mid-trial, resumed, completed
    assert (out / "tiny_search" / "model" / "ner_ray.json").is_file()  # the best trial's model, exported
    assert results["best"]["dev_f1"] == max(t["dev_f1"] for t in trials)

    client, parents, nested = mlflow_runs(f"sqlite:///{out / 'mlflow.db'}")
    assert len(parents) == 1 and len(nested) == 3
    assert {r.data.tags["mlflow.parentRunId"] for r in nested} == {parents[0].info.run_id}
    assert {r.data.tags["ner_ray.trial_id"] for r in nested} == {t["trial_id"] for t in trials}
    run = next(r for r in nested if r.data.tags["ner_ray.trial_id"] == first["trial_id"])
    assert run.info.status == "FINISHED" and run.data.tags["family"] == "token_cls" and run.data.tags["corpus"] == "demo"
    assert run.data.params["model.lora.r"] == "4" and run.data.params["train.epochs"] == "3"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "dev_f1")] == list(range(1, 8))
    assert "test_f1" in run.data.metrics and "f1" not in run.data.metrics  # every score names its split
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "model", "predictions.pubtator", "test_per_type.md", "learning_curve.png"} <= artifacts
    assert {a.path for a in client.list_artifacts(parents[0].info.run_id)} >= {"results.json", "report.md", "f1_vs_trainable.png"}

    (out / "report.md").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "report.md").read_text().startswith("# Study tiny_search")


def test_asha_with_odd_steps_per_epoch_completes_every_trial_it_keeps(tiny, tmp_path):
    """31 training windows at batch 5 are 7 optimiser steps an epoch, evaluated twice an epoch: HF's integer
    eval_steps would evaluate 7 times in 3 epochs and ASHA (bound 6 + 1) would stop the trial at its last
    evaluation, before its test score. With the evaluation plan every trial reports exactly 6 times, then its
    final report. A hopeless trial (lr 1e-7, ranked on dev loss) is stopped at its grace period."""
    path = tmp_path / "study.yaml"
    path.write_text(f"""\
name: odd_steps
data: {{corpus: demo, max_length: 64}}
model: {{name: {tiny}, lora: {{r: 4, alpha: 8}}}}
train: {{epochs: 3, evals_per_epoch: 2, batch_size: 5, lr: 1.0e-2, precision: fp32, output_dir: {tmp_path / 'out'}}}
search:
  train.lr: {{loguniform: [1.0e-7, 1.0e-2]}}
tune:
  metric: dev_loss
  mode: min
  num_samples: 2
  max_concurrent_trials: 1
  scheduler: {{name: asha, grace_period: 2, reduction_factor: 2}}
  searcher: {{name: optuna, seed: 0, points_to_evaluate: [{{train.lr: 1.0e-2}}, {{train.lr: 1.0e-7}}]}}
tracking: {{enabled: false}}
""")
    env = {"RAY_TRAIN_V2_ENABLED": "1", "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.25"}
    with local_ray(env):
        assert main(["tune", str(path)]) == 0
    good, hopeless = json.loads((tmp_path / "out" / "results.json").read_text())["trials"]
    assert good["params"] == {"train.lr": 1e-2} and hopeless["params"] == {"train.lr": 1e-7}
    assert good["status"] == "completed" and good["evaluations"] == 6 and good["epochs"] == pytest.approx(3.0)
    assert good["test_f1"] is not None and Path(good["model_path"], "ner_ray.json").is_file()
    assert (tmp_path / "out" / "odd_steps" / "model" / "ner_ray.json").is_file()
    assert hopeless["status"] == "early_stopped" and hopeless["evaluations"] == 2 and hopeless["test_f1"] is None
    assert hopeless["dev_loss"] > good["dev_loss"]


def test_interrupted_study_resumes_without_running_a_trial_twice(tiny, tmp_path, mlflow_server):
    study = write_study(tmp_path, tiny, "fifo")
    out = tmp_path / "out"
    env = {**os.environ, "RAY_TRAIN_V2_ENABLED": "1", "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.25"}
    command = [sys.executable, "-m", "ner_ray.tune", str(study), f"tracking.tracking_uri={mlflow_server}"]
    log_path = tmp_path / "driver.log"
    with log_path.open("w") as log_file:  # a file, not a pipe: a full pipe would block the driver's prints
        driver = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        finished = _wait_for_final_reports(out, 1, driver, log_path, timeout_s=600)
        driver.send_signal(signal.SIGINT)  # Ctrl-C: Tune saves its state and the driver stops
        driver.wait(timeout=300)
    log = log_path.read_text()
    assert driver.returncode == 130, log[-3000:]
    assert "--resume" in log
    assert "Stop signal received" in log  # Tune itself stopped (the signal reached its handler), not the study after it
    stopped = json.loads((out / "results.json").read_text())["trials"]
    assert sum(t["status"] == "completed" for t in stopped) < 3, stopped  # and it stopped early

    with (tmp_path / "resumed.log").open("w") as log_file:
        resumed = subprocess.run([*command, "--resume"], cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                 timeout=900, check=False)
    assert resumed.returncode == 0, (tmp_path / "resumed.log").read_text()[-3000:]
    trials = json.loads((out / "results.json").read_text())["trials"]
    ended = [(t["trial_id"], t["status"], t["stop_reason"]) for t in trials]
    assert len(trials) == 3 and {t["status"] for t in trials} == {"completed"}, (
        ended, (tmp_path / "resumed.log").read_text()[-6000:])
    assert len({t["trial_id"] for t in trials}) == 3

    client, parents, nested = mlflow_runs(mlflow_server)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(r.data.tags["ner_ray.trial_id"] for r in nested) == sorted(t["trial_id"] for t in trials)
    for trial_id in finished:  # finished before the interruption: trained once, logged once
        run = next(r for r in nested if r.data.tags["ner_ray.trial_id"] == trial_id)
        assert len(client.get_metric_history(run.info.run_id, "test_f1")) == 1
        assert len(list((out / "tune").glob(f"*/tiny_search/train/train-{trial_id}"))) == 1
    assert len(list((out / "tune").glob("*/tiny_search/train/train-*"))) == 3


def test_a_final_report_made_again_is_logged_once(tmp_path):
    """A trial started again after its final report (the study stopped in between, then resumed) reports the same
    final scores again (train/worker.report_again); its MLflow run keeps one test_f1, not two."""
    from types import SimpleNamespace

    from ner_ray.config import StudyConfig
    from ner_ray.tune.mlflow_callback import MlflowTrialCallback
    from ner_ray.tune.tracking import StudyTracker

    config = StudyConfig().with_updates({"tracking.tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"})
    tracker = StudyTracker(config, tmp_path, "study-1", "replay")
    callback = MlflowTrialCallback(tracker, "base", config.model_dump(mode="json"))
    trial = SimpleNamespace(trial_id="t1", config={})
    evaluation = {"training_iteration": 1, "timestamp": 1.0, "dev_f1": 0.5}
    final = {"training_iteration": 2, "timestamp": 2.0, "dev_f1": 0.5, "test_f1": 0.4, "final": True}
    for result in (evaluation, final, {**final, "training_iteration": 1, "timestamp": 3.0}):
        callback.on_trial_result(0, [], trial, result)
    run_id = callback.runs["t1"]
    assert [m.value for m in tracker.client.get_metric_history(run_id, "test_f1")] == [0.4]
    assert len(tracker.client.get_metric_history(run_id, "dev_f1")) == 2


def _wait_for_final_reports(out: Path, count: int, driver: subprocess.Popen, log: Path, timeout_s: float) -> list[str]:
    """Trial ids whose final report reached Tune (its result.json), once `count` of them did."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if driver.poll() is not None:
            pytest.fail(f"the study ended before it could be interrupted:\n{log.read_text()[-3000:]}")
        done = [path.parent.name.split("_")[2] for path in (out / "tune").glob("*/tiny_search/run_trial_*/result.json")
                if '"final": true' in path.read_text()]
        if len(done) >= count:
            return done
        time.sleep(0.2)
    driver.kill()
    pytest.fail(f"no trial finished within {timeout_s} s")


def test_credentials_reach_no_file_and_no_output(tiny, tmp_path, mlflow_server, capsys, monkeypatch):
    """A password in the tracking URI and a token in the environment: the study runs (the MLflow client sends
    them), and neither appears in anything printed or in any file of the output folder or the MLflow store."""
    password, token = "pw-s3cret-4711", "tok-s3cret-0815"
    uri = mlflow_server.replace("http://", f"http://alice:{password}@")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    path = tmp_path / "study.yaml"
    path.write_text(f"""\
name: secret_study
data: {{corpus: demo, max_length: 64}}
model: {{name: {tiny}, lora: {{r: 4, alpha: 8}}}}
train: {{max_steps: 2, eval_steps: 1, batch_size: 8, precision: fp32, output_dir: {tmp_path / 'out'}}}
tune: {{num_samples: 1, scheduler: {{name: fifo}}}}
""")
    env = {"RAY_TRAIN_V2_ENABLED": "1", "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.25"}
    with local_ray(env):
        assert main(["tune", str(path), f"tracking.tracking_uri={uri}"]) == 0
    printed = capsys.readouterr()
    assert f"in {mlflow_server}" in printed.out  # the URI it prints is the one without the user and password
    # every file: the output folder, the MLflow server's store and artifacts, its log
    leaks = [str(f) for f in tmp_path.rglob("*") if f.is_file() and (password.encode() in f.read_bytes() or token.encode() in f.read_bytes())]
    assert leaks == []
    assert password not in printed.out + printed.err and token not in printed.out + printed.err
    recorded = json.loads((tmp_path / "out" / "study.json").read_text())["overrides"]
    assert recorded == [f"tracking.tracking_uri={uri.replace(password, '***')}"]
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["mlflow"]["tracking_uri"] == mlflow_server and results["trials"][0]["status"] == "completed"
