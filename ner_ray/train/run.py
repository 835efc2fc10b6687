"""The driver of the training path: a local Ray (or a cluster's), and each experiment as one Ray Train
`TorchTrainer` run of `worker.train_loop_per_worker` (`ner-ray train STUDY.yaml [--experiment NAME]`).

Writes `OUTPUT_DIR/<experiment>/metrics.json` (dev_f1, test_f1, test_precision, test_recall, test (per type,
untyped, overlap), train_seconds, peak_memory_mb, trainable_percent, ...) and the exported best model in
`OUTPUT_DIR/<experiment>/model/`. Repeats (train.repeats) run with seeds seed, seed+1, ...; `--resume` reads back
the repeats that finished before with the same config instead of training them again.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from ner_ray.artifacts import METRICS, MODEL_DIR, MODEL_META, TRAIN_RUNS_DIR, read_model_meta, run_dir, write_json
from ner_ray.config import StudyConfig
from ner_ray.credentials import redact_tree


def ensure_ray(address: str | None = None, family: str | None = None) -> None:
    """Connect to `address` (or to $RAY_ADDRESS, which `ray job submit` sets for its driver), or start a
    local Ray when none is running (`start_local_ray`, set up for training `family`)."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
    else:
        start_local_ray(family)


def start_local_ray(family: str | None = None, **init_kwargs) -> None:
    """Start a new local Ray that listens on the loopback interface only and whose processes know its address.

    Loopback only: Ray takes a local cluster's node IP from the machine's network address, and its GCS, raylet,
    workers and agents listen there or on every interface; only with `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` (the
    setting Ray itself uses on macOS and Windows) is the node IP 127.0.0.1, and they all bind it. Ray reads that
    setting when it is imported, so the driver's copy (`ray_constants.ENABLE_RAY_CLUSTER`) is set as well while Ray
    starts; Ray's processes inherit the environment variable. Ray's token authentication stays on (its default).

    The dashboard (bound to 127.0.0.1) stays on: Ray Train's placement-group cleaner asks its State API
    whether a run's controller died, and without it the CPUs of every trial that ASHA stops stay reserved.
    That State API client finds the cluster from RAY_ADDRESS, or fails when several Ray instances run on
    the machine; so the GCS gets a chosen port and RAY_ADDRESS is set while Ray's processes start (they
    inherit it), then restored, so that the driver can start another Ray later.

    Ray's processes start under SCHED_BATCH and, unless `family` is a generative one, its workers with
    MALLOC_ARENA_MAX=1, so that they take as little as they can from CPU training (`cpu_isolation`). Its workers run
    at niceness 0 (`cpu_isolation.WORKER_NICENESS`), not Ray's default 15, at which every wake-up of a Ray daemon
    outweighed the training threads 28 to 1; a RAY_worker_niceness the user set is kept. Ray Train's preemption
    watcher is off (`cpu_isolation.PREEMPTION_WATCHER`): a node of a local Ray is never drained by an autoscaler.
    """
    import socket

    import ray
    from ray._common.network_utils import build_address, get_localhost_ip
    from ray._private import ray_constants

    from ner_ray.train.cpu_isolation import PREEMPTION_WATCHER, WORKER_NICENESS, batch_scheduled, one_malloc_arena

    with socket.socket() as probe:
        probe.bind(("", 0))
        port = probe.getsockname()[1]
    pinned = {"RAY_GCS_SERVER_PORT": str(port), "RAY_ADDRESS": build_address(get_localhost_ip(), port),
              ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR: "0",
              WORKER_NICENESS: os.environ.get(WORKER_NICENESS, "0"),
              PREEMPTION_WATCHER: os.environ.get(PREEMPTION_WATCHER, "0")}
    saved = {key: os.environ.get(key) for key in pinned}
    saved_cluster_switch = ray_constants.ENABLE_RAY_CLUSTER
    os.environ.update(pinned)
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        with batch_scheduled(one_malloc_arena(family)) as worker_env:
            kwargs = {"include_dashboard": True, "dashboard_host": "127.0.0.1", "log_to_driver": True,
                      "configure_logging": False, "runtime_env": {"env_vars": worker_env}, **init_kwargs}
            ray.init(address="local", **kwargs)
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_cluster_switch
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def scaling_config(config: StudyConfig):
    from ray.train import ScalingConfig

    res = config.resources
    per_worker: dict[str, float] = {"CPU": res.cpus_per_worker}
    if res.use_gpu:
        per_worker["GPU"] = res.gpus_per_worker if res.gpus_per_worker is not None else 1
    return ScalingConfig(num_workers=res.num_workers, use_gpu=res.use_gpu, resources_per_worker=per_worker)


def run_trainer(config: StudyConfig, run_name: str, storage_path: str | Path, max_failures: int = 0,
                resume_from: Any = None, callbacks: tuple = (), concurrent_trials: int = 1):
    """Fit `train_loop_per_worker` on resources.num_workers Ray Train workers as the Ray Train run
    `storage_path/run_name`; returns the ray.train.Result (final metrics, the exported model as its checkpoint,
    and in best_checkpoints the two evaluation checkpoints Ray keeps: the best dev_f1 and the latest).

    A run started again under the same name and storage path continues from its latest checkpoint (Ray
    Train's own restoration); Tune trials rely on that when a study resumes.

    Args:
        max_failures: restarts after a worker dies (FailureConfig); a restart resumes from the latest checkpoint.
        resume_from: a checkpoint reported at an evaluation of an earlier run (a ray.train.Checkpoint or its
            folder): training continues from its step, optimizer and scheduler state.
        callbacks: Ray Train callbacks (a Tune trial passes ray.tune.integration.ray_train.TuneReportCallback).
        concurrent_trials: Tune trials that run at once (they share the nodes' CPUs: `worker.worker_threads`).
    """
    from ray.train import Checkpoint, CheckpointConfig, FailureConfig, RunConfig
    from ray.train.torch import TorchTrainer

    from ner_ray.train.worker import train_loop_per_worker

    ensure_ray(config.resources.address, config.model.family)
    if resume_from is not None and not isinstance(resume_from, Checkpoint):
        resume_from = Checkpoint.from_directory(str(Path(resume_from).resolve()))
    work_dir = Path(tempfile.mkdtemp(prefix=f"ner_ray_{run_name}_"))
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"config": worker_config(config), "work_dir": str(work_dir),
                           "concurrent_trials": concurrent_trials, "resume_from": resume_from},
        scaling_config=scaling_config(config),
        run_config=RunConfig(
            name=run_name,
            storage_path=str(Path(storage_path).resolve()),
            checkpoint_config=CheckpointConfig(num_to_keep=2, checkpoint_score_attribute="dev_f1", checkpoint_score_order="max"),
            failure_config=FailureConfig(max_failures=max_failures),
            callbacks=list(callbacks),
        ),
    )
    try:
        return trainer.fit()
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def worker_config(config: StudyConfig) -> dict[str, Any]:
    """The config as a Ray Train worker trains with it (and its exported model records it): train.output_dir
    absolute, since workers run in their own working directory (family fusion finds its adapters there), and
    no credential."""
    return redact_tree(config.with_updates({"train.output_dir": str(Path(config.train.output_dir).resolve())})
                       .model_dump(mode="json"))


def fit_experiment(config: StudyConfig, name: str, output_dir: str | Path, max_failures: int = 0,
                   resume_from: Any = None):
    """One new Ray Train run of experiment `name` under OUTPUT_DIR/ray (arguments as `run_trainer`)."""
    return run_trainer(config, f"{name}-{uuid.uuid4().hex[:8]}", Path(output_dir) / TRAIN_RUNS_DIR, max_failures, resume_from)


def train_experiment(config: StudyConfig, name: str, output_dir: str | Path, max_failures: int = 0,
                     resume_from: Any = None, repeat: bool = False) -> dict[str, Any]:
    """Train one experiment (one seed) with TorchTrainer; returns the final metrics, also written to
    OUTPUT_DIR/<name>/metrics.json beside the exported model, or with `repeat` (one of several seeds) to
    OUTPUT_DIR/<name>/seed<k>/ (other arguments as `fit_experiment`)."""
    result = fit_experiment(config, name, output_dir, max_failures, resume_from)
    out = run_dir(output_dir, name, config.train.seed if repeat else None)
    out.mkdir(parents=True, exist_ok=True)
    metrics = {k: v for k, v in result.metrics.items() if not k.startswith("_")}
    (out / METRICS).unlink(missing_ok=True)  # an earlier run's metrics never sit beside this run's model
    if result.checkpoint is not None:
        with result.checkpoint.as_directory() as exported:
            shutil.rmtree(out / MODEL_DIR, ignore_errors=True)
            shutil.copytree(exported, out / MODEL_DIR)
    metrics["experiment"] = name
    metrics["seed"] = config.train.seed
    write_json(out / METRICS, metrics)
    return metrics


def train_repeats(config: StudyConfig, name: str, resume: bool = False) -> list[dict[str, Any]]:
    """Every repeat of an experiment (seeds seed, seed+1, ...); one repeat writes OUTPUT_DIR/<name>/,
    several write OUTPUT_DIR/<name>/seed<k>/ each. With `resume`, a repeat whose folder already holds the
    metrics and model of a run with this very config is not trained again: its metrics are read back."""
    output_dir = Path(config.train.output_dir)
    repeat = config.train.repeats > 1
    configs = [config.with_updates({"train.seed": config.train.seed + i}) for i in range(config.train.repeats)]
    runs = []
    for one in configs:
        folder = run_dir(output_dir, name, one.train.seed if repeat else None)
        finished = finished_run(one, folder) if resume else None
        if finished is not None:
            print(f"{name} (seed {one.train.seed}): finished before with this config; read back from {folder / METRICS}")
            runs.append(finished)
        else:
            runs.append(train_experiment(one, name, output_dir, repeat=repeat))
    return runs


def finished_run(config: StudyConfig, folder: Path) -> dict[str, Any] | None:
    """The metrics of the run in `folder` when it finished (metrics.json beside its exported model) and was
    trained with `config` (train.repeats aside: it says how many seeds, not how one trains); else None."""
    if not (folder / METRICS).is_file() or not (folder / MODEL_DIR / MODEL_META).is_file():
        return None
    wanted = worker_config(config)
    saved = read_model_meta(folder / MODEL_DIR).get("config", {})
    for both in (wanted, saved):
        both.get("train", {}).pop("repeats", None)
    if saved != wanted:
        return None
    return json.loads((folder / METRICS).read_text(encoding="utf-8"))
