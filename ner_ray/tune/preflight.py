"""Pre-flight of a study, before Ray starts and before anything is written: every experiment's corpus, model
and output folder (ner_ray.train.preflight), and what a study adds: the MLflow store is reachable and
writable, tune.metric is a metric trials report (on dev), ASHA's grace period is below the evaluations a
trial makes, and no command-line override sets a key the study searches (Tune would ignore it).
`ner-ray config check`, `ner-ray tune` and `python -m ner_ray.tune` run it.
"""

from __future__ import annotations

import os
from pathlib import Path

from ner_ray.config import Study, StudyConfig
from ner_ray.errors import ConfigError
from ner_ray.registry import FAMILIES
from ner_ray.train.preflight import Findings, check_corpus, check_model, check_output
from ner_ray.train.schedule import planned_evaluations

# What every trial reports at each evaluation (the HF Trainer's eval_* renamed dev_*), beside dev_f1_<type>
# and the family's own metrics (Family.metric_names).
DEV_METRICS = ("dev_f1", "dev_precision", "dev_recall", "dev_loss", "dev_untyped_f1", "dev_overlap_f1",
               "dev_gold_crossing_windows")


def check_study(study: Study, overrides: list[str] | tuple[str, ...] = ()) -> Findings:
    """Everything wrong with a study that can be known before it starts; raise with `findings.raise_errors()`."""
    findings = Findings()
    checked: set[str] = set()
    many = len(study.experiments) > 1
    for name, config in study.experiments.items():
        where = f"experiment '{name}': " if many else ""
        for key, check in ((config.data.model_dump_json(), check_corpus),
                           (f"{config.model.name}|{config.data.max_length}", check_model)):
            if key not in checked:  # experiments mostly share a corpus and a model: check each once
                checked.add(key)
                check(config, findings, where)
        check_tune(config, findings, where)
        for text in overrides:
            key = text.partition("=")[0].strip()
            if key in config.search:
                findings.errors.append(f"{where}override {text!r} sets {key}, which the study searches "
                                       f"(search.{key}): change the search block instead, e.g. "
                                       f"'search.{key}={{choice: [...]}}', or drop it from the search with 'search.{key}=null'")
    output_dir = Path(study.defaults.train.output_dir)
    check_output(output_dir, findings, "train.output_dir")
    check_tracking(study.defaults, output_dir, findings)
    return findings


def reported_metrics(config: StudyConfig) -> list[str]:
    """The dev metrics every trial reports, and its family's own (importing the family only to ask for them)."""
    if config.tune.metric in DEV_METRICS:
        return list(DEV_METRICS)
    family = FAMILIES.get(config.model.family)
    return [*DEV_METRICS, *(f"dev_{m}" for m in getattr(family, "metric_names", ()))]


def check_tune(config: StudyConfig, findings: Findings, where: str = "") -> None:
    from ner_ray.tune.space import check_scheduler

    metric = config.tune.metric
    if metric.startswith("test_"):
        findings.errors.append(f"{where}tune.metric {metric}: trials are ranked and stopped on dev; test is scored once, "
                               "at the end, for the model dev chose (use dev_f1)")
    elif metric not in reported_metrics(config) and not metric.startswith("dev_f1_"):
        findings.errors.append(f"{where}tune.metric {metric!r} is not a metric trials report; valid: "
                               f"{', '.join(reported_metrics(config))}, dev_f1_<entity type>")
    try:
        check_scheduler(config, where)
    except ConfigError as err:
        findings.errors.append(str(err))
        return
    evaluations = planned_evaluations(config.train)
    grace = config.tune.scheduler.grace_period
    if config.tune.scheduler.name == "asha" and evaluations is not None and grace >= evaluations:
        findings.errors.append(f"{where}tune.scheduler.grace_period {grace}: a trial makes {evaluations} evaluations, so "
                               f"ASHA could stop none before it trained to the end; make it < {evaluations} (or use "
                               "tune.scheduler.name: fifo)")


def check_tracking(config: StudyConfig, output_dir: Path, findings: Findings) -> None:
    """The MLflow store answers (a server) or can be written (a local store), whatever the URI's scheme."""
    if not config.tracking.enabled:
        return
    from ner_ray.tune.tracking import check_reachable, tracking_uri

    uri = tracking_uri(config, output_dir)
    if uri.startswith(("http://", "https://")):
        try:
            check_reachable(uri)
        except ConfigError as err:
            findings.errors.append(str(err))
        return
    if uri.startswith("sqlite:///"):
        store = Path(uri[len("sqlite:///"):])
        check_output(store.parent, findings, f"the MLflow store {uri}")
        if store.exists() and not os.access(store, os.W_OK):
            findings.errors.append(f"the MLflow store {uri}: {store} is not writable")
        return
    if uri.startswith("file:") or "://" not in uri:
        check_output(Path(uri.removeprefix("file://").removeprefix("file:")), findings, f"the MLflow store {uri}")
        return
    try:
        from mlflow import MlflowClient

        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except Exception as err:  # any scheme MLflow knows: whatever it raises, the store cannot be used
        findings.errors.append(f"the MLflow store {uri} cannot be read: {type(err).__name__}: {err}")
