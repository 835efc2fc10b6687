"""The Tune Callback that logs each trial of a study into its nested MLflow run (see tracking.py).

Module level, holding plain data and a picklable tracker, because Tune pickles its callbacks with the
experiment state and a resumed study unpickles them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from ray.tune import Callback

from ner_ray.artifacts import MODEL_DIR, PREDICTIONS
from ner_ray.config import StudyConfig
from ner_ray.credentials import redact_tree
from ner_ray.tune.study_report import per_type_markdown
from ner_ray.tune.tracking import StudyTracker, numeric_metrics
from ner_ray.tune.trial import trial_config

FINAL_LOGGED = "ner_ray.final_logged"  # tag of a trial run whose final report is logged (its Tune iteration)


class MlflowTrialCallback(Callback):
    """on_trial_start: find or create the nested run (params = resolved config, tags, config.yaml);
    on_trial_result: metrics at every evaluation; on_trial_complete: exported model, test predictions,
    per-type test table, learning curve; on_trial_error: FAILED with Tune's error file."""

    def __init__(self, tracker: StudyTracker, experiment: str, base: dict[str, Any]):
        self.tracker = tracker
        self.experiment = experiment
        self.base = base
        self.runs: dict[str, str] = {}

    def _run(self, trial) -> str:
        if trial.trial_id not in self.runs:
            config = trial_config(trial.config, StudyConfig.model_validate(self.base))
            tags = {"family": config.model.family, "corpus": config.data.corpus, "seed": str(config.train.seed),
                    "experiment": self.experiment, "model": config.model.name}
            run_id, created = self.tracker.trial_run(trial.trial_id, f"{self.experiment}-{trial.trial_id}", tags)
            if created:
                self.tracker.log_params(run_id, config)
                self.tracker.client.log_dict(run_id, redact_tree(config.model_dump(mode="json")), "config.yaml")
                self.tracker.client.log_dict(run_id, redact_tree(trial.config), "params.json")
            self.tracker.client.update_run(run_id, status="RUNNING")
            self.runs[trial.trial_id] = run_id
        return self.runs[trial.trial_id]

    def on_trial_start(self, iteration, trials, trial, **info):
        self._run(trial)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        from mlflow.entities import Metric

        client, run_id = self.tracker.client, self._run(trial)
        final = bool(result.get("final"))
        if final and FINAL_LOGGED in client.get_run(run_id).data.tags:
            return  # the same final report again: the trial was started again after it (train/worker.report_again)
        step = int(result.get("training_iteration", 0))
        stamp = int(result.get("timestamp", 0) * 1000)
        metrics = [Metric(key, value, stamp, step) for key, value in numeric_metrics(result).items()]
        client.log_batch(run_id, metrics=metrics)
        if final:
            client.set_tag(run_id, FINAL_LOGGED, str(step))

    def on_trial_complete(self, iteration, trials, trial, **info):
        client, run_id = self.tracker.client, self._run(trial)
        result = trial.last_result or {}
        if result.get("final"):
            checkpoint = result.get("checkpoint_path")
            if checkpoint and Path(checkpoint).is_dir():
                client.log_artifacts(run_id, checkpoint, MODEL_DIR)
                predictions = Path(checkpoint) / PREDICTIONS
                if predictions.is_file():
                    client.log_artifact(run_id, str(predictions))
            test = result.get("test") or {}
            if test.get("per_type"):
                client.log_text(run_id, per_type_markdown(test["per_type"]) + "\n", "test_per_type.md")
            client.set_tag(run_id, "stop_reason", "completed")
        else:
            client.set_tag(run_id, "stop_reason", "early_stopped")
        log_learning_curve(self.tracker, run_id)
        client.set_terminated(run_id, status="FINISHED")

    def on_trial_error(self, iteration, trials, trial, **info):
        client, run_id = self.tracker.client, self._run(trial)
        client.set_tag(run_id, "stop_reason", "error")
        if trial.error_file and Path(trial.error_file).is_file():
            client.log_artifact(run_id, trial.error_file)
        client.set_terminated(run_id, status="FAILED")

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "runs": {}}  # run ids are found again by tag after a restore


def log_learning_curve(tracker: StudyTracker, run_id: str) -> None:
    """dev F1 (left axis) and losses (right axis) against Tune iterations, from the run's metric history."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    histories = {name: tracker.client.get_metric_history(run_id, name) for name in ("dev_f1", "dev_loss", "loss")}
    curves = {name: sorted((m.step, m.value) for m in history) for name, history in histories.items() if history}
    if not curves:
        return
    figure, f1_axes = plt.subplots(figsize=(6, 4), dpi=100)
    loss_axes = f1_axes.twinx()
    colors = {"dev_f1": "tab:blue", "dev_loss": "tab:orange", "loss": "tab:gray"}
    for name, points in curves.items():
        axes = f1_axes if name == "dev_f1" else loss_axes
        axes.plot(*zip(*points), marker="o" if name == "dev_f1" else ".", label=name, color=colors[name])
    f1_axes.set_xlabel("evaluation (Tune iteration)")
    f1_axes.set_ylabel("dev F1")
    loss_axes.set_ylabel("loss")
    f1_axes.grid(alpha=0.3)
    figure.legend(loc="lower right")
    figure.tight_layout()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "learning_curve.png")
        figure.savefig(path)
        tracker.client.log_artifact(run_id, str(path))
    plt.close(figure)
