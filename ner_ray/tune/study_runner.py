"""Running a study on Ray Tune (`python -m ner_ray.tune STUDY.yaml`, see command.py): one Tuner per experiment.

Each experiment of the study is one Tune experiment (one `Tuner`, run in file order, so family fusion
finds the adapters of the experiments before it): its `search` block is the param space, ASHA stops weak
trials on dev F1, Optuna proposes configs, and every trial is a Ray Train run (`trial.py`). The study's
MLflow parent run is created before any trial; each trial logs into a nested run (`tracking.py`).

Files in train.output_dir (the study's defaults):
  study.json      the study id and how it was started (what --resume continues)
  study.yaml      every experiment's resolved config
  tune/<study id>/<experiment>/   Tune's experiment folder (trial results, searcher state, Train runs)
  <experiment>/[seed<k>/]model    the best trial's exported model (per seed when repeats > 1)
  results.json    one record per trial, rewritten after each experiment; report.md and the plot
  mlflow.db, mlartifacts/         the default MLflow store
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ner_ray.artifacts import (
    MODEL_DIR,
    RESULTS,
    TRIAL_RUNS_DIR,
    TUNE_DIR,
    run_dir,
    write_json,
)
from ner_ray.config import Study, StudyConfig, load_study
from ner_ray.credentials import redact, redact_tree
from ner_ray.errors import ConfigError
from ner_ray.registry import FAMILIES
from ner_ray.tune.ctrl_c import CtrlC
from ner_ray.tune.space import (
    check_scheduler,
    concurrent_trials,
    param_space,
    tune_config,
)
from ner_ray.tune.study_report import write_report
from ner_ray.tune.study_state import check_trusted, claim, record_start, study_command
from ner_ray.tune.trial import run_trial, trial_config

# A trial's own actor only waits on its Ray Train run: the Train workers hold the CPUs. It reserves no CPU
# (Tune needs a non-empty bundle, hence a little memory): with even 0.01 CPU each, two 1-CPU trials would
# not fit on 2 cores at once, and the second trial's Train worker group would time out waiting.
TRIAL_DRIVER_RESOURCES = {"CPU": 0, "memory": 256 * 2**20}


class StudyInterrupted(RuntimeError):
    """Tune stopped on a signal (Ctrl-C); the state is saved and `--resume` continues the study."""


def best_of(rows: list[dict[str, Any]], metric: str, mode: str) -> dict[str, Any] | None:
    """The row with the best `metric` (max or min) among those that have it; None if none has."""
    ranked = [row for row in rows if row.get(metric) is not None]
    return (max if mode == "max" else min)(ranked, key=lambda row: row[metric]) if ranked else None


def tune_experiment(config: StudyConfig, name: str, experiment_root: Path, callbacks: list, resume: bool):
    """Fit (or, with resume, restore and finish) the Tune experiment of one study experiment; a ResultGrid."""
    from ray import tune

    experiment_path = experiment_root / name
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, base=redact_tree(config.model_dump(mode="json")),  # trials need no credential
                             storage_path=str(experiment_path / TRIAL_RUNS_DIR), max_failures=config.tune.max_failures,
                             concurrent_trials=concurrent_trials(config)),
        TRIAL_DRIVER_RESOURCES)
    if resume and tune.Tuner.can_restore(str(experiment_path)):
        check_trusted(experiment_path)
        tuner = tune.Tuner.restore(str(experiment_path), trainable=trainable, param_space=param_space(config),
                                   resume_unfinished=True, resume_errored=False, restart_errored=False)
    else:
        tuner = tune.Tuner(
            trainable,
            param_space=param_space(config),
            tune_config=tune_config(config),
            run_config=tune.RunConfig(
                name=name, storage_path=str(experiment_root), callbacks=callbacks, verbose=1,
                # a trial that dies is started again (its Ray Train run resumes from its latest checkpoint)
                failure_config=tune.FailureConfig(max_failures=config.tune.max_failures)),
        )
    return tuner.fit()


def saved_statuses(experiment_path: Path) -> dict[str, str]:
    """Trial id -> status in Tune's saved experiment state: after Ctrl-C the trials it will resume are
    RUNNING / PENDING / PAUSED there (in memory Tune has already stopped them)."""
    from ray.tune import ExperimentAnalysis

    return {trial.trial_id: trial.status for trial in ExperimentAnalysis(str(experiment_path)).trials}


def result_trial_id(result) -> str:
    """A Tune Result's trial id: from its metrics, or (a trial that reported nothing) its folder name
    run_trial_<id>_<n>_<params>_<date>."""
    if (result.metrics or {}).get("trial_id"):
        return result.metrics["trial_id"]
    parts = Path(result.path or "").name.split("_")
    return parts[2] if len(parts) > 2 else ""


def trial_record(result, experiment: str, config: StudyConfig, statuses: dict[str, str]) -> dict[str, Any]:
    """One results.json record from a Tune Result (and the saved Tune statuses): config, best dev metric,
    test scores (None for a trial that did not complete, or a study without a test split), how it ended."""
    metric, mode = config.tune.metric, config.tune.mode
    trial_id = result_trial_id(result)
    trial_status = statuses.get(trial_id, "TERMINATED")
    history = result.metrics_dataframe
    metrics = result.metrics or {}
    reported = [] if history is None or metric not in history else [v for v in history[metric].tolist() if v == v]
    final = bool(metrics.get("final"))
    if result.error is not None:
        status, reason = "error", f"{type(result.error).__name__}: {str(result.error).splitlines()[0][:300]}"
    elif final:
        status, reason = "completed", "ran all its evaluations"
    elif trial_status in ("RUNNING", "PENDING", "PAUSED"):
        status, reason = "interrupted", "the study stopped before this trial ended; --resume continues it"
    elif metrics.get("training_iteration"):
        status, reason = "early_stopped", f"stopped by the {config.tune.scheduler.name} scheduler"
    else:
        status, reason = "interrupted", "reported nothing"
    best = (max(reported) if mode == "max" else min(reported)) if reported else None
    if final and metric in metrics:  # the final report carries the best checkpoint's own dev score
        best = metrics[metric]
    iterations = int(metrics.get("training_iteration", 0))
    params = dict(result.config or {})
    resolved = trial_config(params, config)
    return {
        "experiment": experiment,
        "trial_id": trial_id,
        "params": params,
        "seed": resolved.train.seed,
        "family": resolved.model.family,
        "status": status,
        "stop_reason": reason,
        metric: best,
        "dev_f1": best if metric == "dev_f1" else metrics.get("dev_f1"),
        "test_f1": metrics.get("test_f1") if final else None,
        "test_precision": metrics.get("test_precision") if final else None,
        "test_recall": metrics.get("test_recall") if final else None,
        "test_per_type": (metrics.get("test") or {}).get("per_type") if final else None,
        "train_precision": metrics.get("train_precision") if final else None,
        "evaluations": iterations - 1 if final else iterations,
        "epochs": history["epoch"].max() if history is not None and "epoch" in history else metrics.get("epoch"),
        "train_seconds": metrics.get("train_seconds") or metrics.get("time_total_s"),
        "seconds": metrics.get("time_total_s"),
        # trial start -> first report: Ray Train start-up, data loading and the first evaluation interval
        "first_report_seconds": float(history["time_total_s"].iloc[0]) if history is not None and len(history) else None,
        "peak_memory_mb": metrics.get("peak_memory_mb"),
        "trainable_percent": metrics.get("trainable_percent"),
        "resumed_from_step": metrics.get("resumed_from_step") if final else None,
        "model_path": metrics.get("checkpoint_path") if final else None,
        "trial_path": result.path,
        # the family's own dev metrics (span_gen: fast_f1, invalid / hallucination / duplicate rates), as last reported
        **{f"dev_{name}": metrics.get(f"dev_{name}") for name in FAMILIES.get(resolved.model.family).metric_names},
    }


def export_best(records: list[dict[str, Any]], experiment: str, output_dir: Path, mode: str, metric: str) -> None:
    """Copy the best completed trial's model to OUTPUT_DIR/<experiment>/model, and the best per seed to
    OUTPUT_DIR/<experiment>/seed<k>/model (where family fusion and serving look for them)."""
    done = [r for r in records if r["status"] == "completed" and r["model_path"] and r.get(metric) is not None]
    if not done:
        return
    targets = {run_dir(output_dir, experiment) / MODEL_DIR: best_of(done, metric, mode)}
    seeds = sorted({r["seed"] for r in done})
    if len(seeds) > 1:
        targets.update({run_dir(output_dir, experiment, s) / MODEL_DIR: best_of([r for r in done if r["seed"] == s], metric, mode)
                        for s in seeds})
    for target, record in targets.items():
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(record["model_path"], partial)
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)


def write_results(output_dir: Path, study: Study, study_id: str, trials: list[dict[str, Any]], tracker) -> dict[str, Any]:
    """Write results.json (atomically) and return its payload."""
    metric, mode = study.defaults.tune.metric, study.defaults.tune.mode
    payload = {"study": study.name, "study_id": study_id, "metric": metric, "mode": mode,
               "experiments": list(study.experiments), "best": best_of(trials, metric, mode), "trials": trials,
               "mlflow": {"tracking_uri": redact(tracker.uri), "parent_run_id": tracker.parent_id} if tracker else None}
    if (output_dir / RESULTS).is_file():  # scores recorded through a service (tune/served_scores.py) outlive a resume
        served = json.loads((output_dir / RESULTS).read_text(encoding="utf-8")).get("served")
        if served:
            payload["served"] = served
    write_json(output_dir / RESULTS, payload)
    return payload


def run_study(path: str | Path, overrides: Iterable[str] = (), resume: bool = False,
              address: str | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Run (or resume) every experiment of a study; returns the results.json payload. The output folder must hold
    no other study (`overwrite`: move it aside; see study_state.py)."""
    from ner_ray.train.run import ensure_ray
    from ner_ray.tune.preflight import check_study
    from ner_ray.tune.tracking import StudyTracker

    study = load_study(path, overrides)
    findings = check_study(study, study.overrides)  # before Ray starts and before anything is written
    for warning in findings.warnings:
        print(f"warning: {redact(warning)}")
    findings.raise_errors()
    output_dir = Path(study.defaults.train.output_dir).resolve()
    for name, config in study.experiments.items():
        if Path(config.train.output_dir).resolve() != output_dir:
            raise ConfigError(f"experiment '{name}': train.output_dir {config.train.output_dir} differs from the "
                              f"study's {study.defaults.train.output_dir}; a Tune study keeps one output folder")
        check_scheduler(config, f"experiment '{name}': ")
    state = claim(study, output_dir, resume, overwrite)
    study_id = state.study_id
    tracker = None
    if study.defaults.tracking.enabled:  # before any trial: an unreachable server fails here
        tracker = StudyTracker(study.defaults, output_dir, study_id, study.name)
    ensure_ray(address or study.defaults.resources.address, study.defaults.model.family)
    record_start(study, output_dir, state)  # only now does the folder hold this study
    experiment_root = output_dir / TUNE_DIR / study_id
    trials: list[dict[str, Any]] = []
    payload: dict[str, Any] = {}
    status = "FAILED"
    try:
        with CtrlC() as ctrl_c:
            for name, config in study.experiments.items():
                callbacks = []
                if tracker is not None:
                    from ner_ray.tune.mlflow_callback import MlflowTrialCallback

                    callbacks.append(MlflowTrialCallback(tracker, name, redact_tree(config.model_dump(mode="json"))))
                grid = tune_experiment(config, name, experiment_root, callbacks, resume)
                statuses = saved_statuses(experiment_root / name)
                records = [trial_record(result, name, config, statuses) for result in grid]
                export_best(records, name, output_dir, config.tune.mode, config.tune.metric)
                trials.extend(records)
                payload = write_results(output_dir, study, study_id, trials, tracker)
                # Ctrl-C between two trials leaves no unfinished trial behind: only the signal tells
                if ctrl_c.received or any(r["status"] == "interrupted" for r in records):
                    raise StudyInterrupted(f"study {study.name} was interrupted in experiment '{name}'; continue it "
                                           f"with: {study_command(study, '--resume')}")
        status = "FINISHED"
    except StudyInterrupted:
        status = "KILLED"
        raise
    finally:
        if trials:
            table, report = write_report(output_dir)
            print(table)
            print(f"results: {output_dir / RESULTS}\nreport: {report}")
        if tracker is not None:
            tracker.finish(output_dir, status)
            print(f"MLflow: parent run {tracker.parent_id} ({len(tracker.trial_runs())} nested trial runs) in "
                  f"{tracker.uri}\n  view: {tracker.ui_hint}")
    return payload
