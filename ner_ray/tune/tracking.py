"""MLflow for a Tune study: one parent run per study, one nested run per trial, logged from the driver.

The trials' reports reach the Tune driver anyway, so a Tune `Callback` logs them there; workers and
trial actors never talk to the tracking server (they may run on nodes that cannot reach it).
Runs are found again by tag (`ner_ray.study_id`, `ner_ray.trial_id`), so a resumed study logs into its
existing runs and never creates duplicates. Ray's MLflowLoggerCallback makes flat, untagged runs with
only the sampled params and new runs on resume, which is why this module exists.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

from ner_ray.artifacts import MLFLOW_ARTIFACTS, MLFLOW_DB, STUDY_FILES
from ner_ray.config import StudyConfig
from ner_ray.credentials import credentials_to_env, redact
from ner_ray.errors import ConfigError

STUDY_TAG = "ner_ray.study_id"
TRIAL_TAG = "ner_ray.trial_id"
PARENT_TAG = "mlflow.parentRunId"
ROLE_TAG = "ner_ray.role"  # "study" (the parent run) or "trial" (a nested run)


def tracking_uri(config: StudyConfig, output_dir: str | Path) -> str:
    """tracking.tracking_uri, else $MLFLOW_TRACKING_URI, else a SQLite store in the output directory.

    A user and password in the URI move to MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (which the
    MLflow client sends as basic auth), so the URI ner_ray keeps, prints and writes holds no credential."""
    uri = config.tracking.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        return f"sqlite:///{(Path(output_dir) / MLFLOW_DB).resolve()}"
    return credentials_to_env(uri)


def check_reachable(uri: str, timeout_s: float = 5.0) -> None:
    """For an http(s) tracking server: fail now, naming it, if it does not answer its /health endpoint."""
    if not uri.startswith(("http://", "https://")):
        return
    import requests

    try:
        answer = requests.get(uri.rstrip("/") + "/health", timeout=timeout_s)
        answer.raise_for_status()
    except requests.RequestException as err:
        raise ConfigError(f"MLflow tracking server {uri} is unreachable ({type(err).__name__}: {err}); start it "
                          "(`mlflow server --host 127.0.0.1 --port 5000`), fix tracking.tracking_uri / "
                          "MLFLOW_TRACKING_URI, or set tracking.enabled: false") from None


def numeric_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The loggable metrics of a Tune result: numbers (not bools), minus Tune's bookkeeping."""
    skip = {"training_iteration", "timestamp", "pid", "time_this_iter_s", "time_since_restore",
            "iterations_since_restore", "done", "final", "node_ip", "step"}
    return {key: float(value) for key, value in result.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in skip
            and not key.startswith("config/")}


class StudyTracker:
    """The study's MLflow parent run: found (by study id) or created, and finished at the end."""

    def __init__(self, config: StudyConfig, output_dir: str | Path, study_id: str, study_name: str):
        from mlflow import MlflowClient

        self.uri = tracking_uri(config, output_dir)
        check_reachable(self.uri)
        self.client = MlflowClient(tracking_uri=self.uri)
        self.study_id = study_id
        self.experiment_id = self._experiment(config.tracking.experiment_name or study_name, output_dir)
        found = self.client.search_runs([self.experiment_id], f"tags.`{STUDY_TAG}` = '{study_id}' and "
                                        f"tags.`{ROLE_TAG}` = 'study'", max_results=1)
        if found:
            self.parent_id = found[0].info.run_id
        else:
            run = self.client.create_run(self.experiment_id, run_name=study_name,
                                         tags={STUDY_TAG: study_id, ROLE_TAG: "study"})
            self.parent_id = run.info.run_id
            self.log_params(self.parent_id, config)
        self.client.update_run(self.parent_id, status="RUNNING")

    # Tune pickles its RunConfig (and so the callback holding this tracker) to resume a study later:
    # keep the ids, rebuild the client.
    def __getstate__(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if key != "client"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        from mlflow import MlflowClient

        self.__dict__.update(state)
        self.client = MlflowClient(tracking_uri=self.uri)

    def _experiment(self, name: str, output_dir: str | Path) -> str:
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        artifacts = None
        if not self.uri.startswith(("http://", "https://", "databricks")):  # local store: artifacts beside it
            artifacts = (Path(output_dir) / MLFLOW_ARTIFACTS).resolve().as_uri()
        return self.client.create_experiment(name, artifact_location=artifacts)

    def log_params(self, run_id: str, config: StudyConfig) -> None:
        """The resolved config as params (dotted keys), 100 per call as MLflow allows."""
        from mlflow.entities import Param

        params = [Param(key, redact(str(value))[:6000]) for key, value in sorted(config.to_flat_dict().items())]
        for start in range(0, len(params), 100):
            self.client.log_batch(run_id, params=params[start:start + 100])

    def trial_run(self, trial_id: str, name: str, tags: dict[str, str]) -> tuple[str, bool]:
        """The nested run of a trial: (run id, created now). A resumed study finds the run it made before."""
        found = self.client.search_runs([self.experiment_id], f"tags.`{TRIAL_TAG}` = '{trial_id}' and "
                                        f"tags.`{STUDY_TAG}` = '{self.study_id}'", max_results=1)
        if found:
            return found[0].info.run_id, False
        run = self.client.create_run(self.experiment_id, run_name=name, tags={
            **tags, TRIAL_TAG: trial_id, STUDY_TAG: self.study_id, PARENT_TAG: self.parent_id, ROLE_TAG: "trial"})
        return run.info.run_id, True

    def trial_runs(self) -> list:
        """Every nested run of this study (for tests and the report)."""
        return self.client.search_runs([self.experiment_id], f"tags.`{PARENT_TAG}` = '{self.parent_id}'")

    def finish(self, output_dir: str | Path, status: str = "FINISHED") -> None:
        """Attach results.json, report.md, the plot and the resolved configs to the parent run and close it."""
        for name in STUDY_FILES:
            path = Path(output_dir) / name
            if path.is_file():
                self.client.log_artifact(self.parent_id, str(path))
        self.client.set_terminated(self.parent_id, status=status)

    @property
    def ui_hint(self) -> str:
        """The shell-quoted command that shows the study (paths with spaces stay one argument)."""
        if self.uri.startswith("sqlite:///"):
            return shlex.join(["mlflow", "ui", "--backend-store-uri", self.uri, "--host", "127.0.0.1"])
        return f"open {self.uri}"
