"""One Tune trial = one Ray Train run (Ray 2.60's Train + Tune pattern).

The trial function applies its sampled params to the experiment's config and fits a TorchTrainer
whose `TuneReportCallback` forwards every worker report (one per dev evaluation, one final) to Tune,
where ASHA and the searcher see them. The Ray Train run is named after the trial, so a trial that starts
again (a resumed study, a retried trial) continues from its own latest checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ner_ray.config import StudyConfig
from ner_ray.tune.space import trial_updates


def trial_config(params: dict[str, Any], base: StudyConfig) -> StudyConfig:
    """The validated config of a trial: the experiment's config with the trial's sampled params."""
    return base.with_updates(trial_updates(params, base))


def train_run_name(trial_id: str) -> str:
    return f"train-{trial_id}"


def run_trial(params: dict[str, Any], base: dict[str, Any], storage_path: str, max_failures: int,
              concurrent_trials: int = 1) -> None:
    """Tune's function trainable (bound with tune.with_parameters): train one trial through TorchTrainer.

    Args:
        params: the trial's sampled dotted keys (and a Repeater's __trial_index__).
        base: the experiment's StudyConfig as JSON.
        storage_path: folder of the trials' Ray Train runs.
        max_failures: Ray Train worker restarts within the trial (each resumes from the latest checkpoint).
        concurrent_trials: the study's trials at once (they share the nodes' CPU threads).
    """
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    from ner_ray.train.run import run_trainer

    config = trial_config(params, StudyConfig.model_validate(base))
    trial_id = tune.get_context().get_trial_id()
    run_trainer(config, train_run_name(trial_id), Path(storage_path), max_failures=max_failures,
                callbacks=(TuneReportCallback(),), concurrent_trials=concurrent_trials)
