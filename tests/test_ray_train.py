"""Ray Train end to end on CPU: TorchTrainer with two gloo DDP workers, resuming from a reported
checkpoint, DeepSpeed ZeRO-2 (and, marked slow, ZeRO-3, CPU offload and FailureConfig recovering from
a killed worker).

Every run trains a 2-layer 32-wide BERT on the packaged demo corpus; one local Ray serves the module.
Run time is mostly process start-up: each run starts a controller and worker processes that import
torch and transformers (about 30 s a run on two busy cores), so the default set keeps to six runs.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import psutil
import pytest
from conftest import kill_worker_after_first_checkpoint, local_ray
from test_families import build_tiny_bert

from ner_ray.artifacts import FINAL_REPORT, PREDICTIONS
from ner_ray.config import StudyConfig
from ner_ray.inference.evaluate import evaluate_model

FINAL_KEYS = {"test_f1", "test_precision", "test_recall", "test", "train_seconds", "peak_memory_mb", "trainable_percent",
              "train_samples_per_second", "dev_f1", "dev_precision", "dev_recall", "threads_per_worker", "resumed_from_step",
              "final", "training_memory_mb", "train_precision"}


@pytest.fixture(scope="module")
def ray_session(tmp_path_factory):
    """One local Ray for the module; yields a fresh torch-extensions folder, where DeepSpeed would put
    any op it compiles. The environment is set before ray.init, so every Ray process inherits it."""
    extensions = tmp_path_factory.mktemp("torch-extensions")
    env = {"RAY_TRAIN_V2_ENABLED": "1", "TORCH_EXTENSIONS_DIR": str(extensions),
           "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.25"}  # the controller notices a finished run sooner (default 2 s)
    with local_ray(env):
        yield extensions


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


def tiny_study(model: Path, output_dir: Path, **updates) -> StudyConfig:
    """Full fine-tuning of the tiny BERT on the demo corpus, fp32, one epoch."""
    return StudyConfig().with_updates({
        "model.name": str(model), "data.max_length": 64, "train.epochs": 1, "train.batch_size": 8,
        "train.lr": 1e-3, "train.precision": "fp32", "train.output_dir": str(output_dir), **updates})


def step_checkpoints(result) -> list[tuple[Path, dict]]:
    """The kept checkpoints reported at evaluations (HF training state inside), oldest first."""
    kept = [(Path(c.path), m) for c, m in result.best_checkpoints if not m.get("final")]
    return sorted(kept, key=lambda item: item[1]["step"])


def evaluations(checkpoint: Path) -> list[tuple[int, float]]:
    """(step, dev F1) of every evaluation in the HF training state of a step checkpoint."""
    state = json.loads((checkpoint / "checkpoint" / "trainer_state.json").read_text())
    return [(log["step"], log["eval_f1"]) for log in state["log_history"] if "eval_f1" in log]


def assert_final_metrics(result) -> dict:
    assert result.error is None
    metrics = result.metrics
    assert FINAL_KEYS <= metrics.keys()
    assert metrics["final"] is True
    for key in ("test_f1", "test_precision", "test_recall", "dev_f1"):
        assert 0.0 <= metrics[key] <= 1.0
    assert set(metrics["test"]["per_type"]) == {"Chemical", "Disease"} and metrics["train_precision"] == "fp32"
    assert metrics["train_seconds"] > 0 and metrics["train_samples_per_second"] > 0 and metrics["peak_memory_mb"] > 0
    assert metrics["trainable_percent"] == pytest.approx(100.0)
    # The exported model (the final checkpoint) gives the F1 that the workers reported.
    assert evaluate_model(result.checkpoint.path, "demo", "test")["test_f1"] == pytest.approx(metrics["test_f1"])
    assert (Path(result.checkpoint.path) / PREDICTIONS).read_text().count("|t|") == 5  # the 5 test abstracts
    return metrics


DDP = {"resources.num_workers": 2, "train.eval_steps": 1}


@pytest.fixture(scope="module")
def ddp_run(ray_session, tiny, tmp_path_factory):
    """Two DDP workers, 31 training windows at 8 per worker per step: 2 steps, an evaluation after each."""
    from ner_ray.train.run import fit_experiment

    output_dir = tmp_path_factory.mktemp("ddp")
    config = tiny_study(tiny, output_dir, **DDP)
    return config, fit_experiment(config, "ddp", output_dir)


def test_two_ddp_workers_report_dev_f1_at_every_evaluation(ddp_run):
    _, result = ddp_run
    metrics = assert_final_metrics(result)
    assert metrics["train_windows"] == 31 and metrics["resumed_from_step"] == 0
    # Ray keeps two checkpoints (the best by dev_f1 and the latest, here the exported model); each
    # evaluation's report carries dev metrics, and the HF state inside has every evaluation up to its step.
    frame = result.metrics_dataframe
    assert len(frame) in (2, 3)  # 3 when dev_f1 ties let both evaluations rank with the export
    assert frame["dev_f1"].between(0, 1).all() and {"dev_precision", "dev_recall", "step"} <= set(frame)
    kept, reported = step_checkpoints(result)[-1]
    assert [step for step, _ in evaluations(kept)] == list(range(1, reported["step"] + 1))
    assert evaluations(kept)[-1][1] == pytest.approx(reported["dev_f1"])
    # Two workers split the cores instead of each taking all of them.
    assert metrics["threads_per_worker"] == max(1, os.cpu_count() // 2)
    assert metrics["training_memory_mb"] is None or metrics["training_memory_mb"] > 0


def test_resume_from_a_reported_checkpoint_continues_its_steps(ddp_run, tmp_path):
    from ner_ray.train.run import fit_experiment

    config, first = ddp_run
    checkpoint, reported = step_checkpoints(first)[-1]
    start = reported["step"]
    resumed = fit_experiment(config.with_updates({"train.max_steps": start + 2}), "resumed", tmp_path, resume_from=checkpoint)
    assert assert_final_metrics(resumed)["resumed_from_step"] == start
    # The steps up to `start` were not trained again: the new run's evaluations come after it, and its
    # training state carries the first run's evaluations forward.
    later, reported_later = step_checkpoints(resumed)[-1]  # the best of steps start+1, start+2
    assert reported_later["step"] > start
    history = evaluations(later)
    assert [step for step, _ in history] == list(range(1, reported_later["step"] + 1))
    assert history[:start] == evaluations(checkpoint)


@pytest.mark.slow(reason="one more worker start-up")
def test_resuming_from_the_exported_model_is_a_clear_error(ddp_run, tmp_path):
    from ray.train import Checkpoint

    from ner_ray.train.run import fit_experiment

    config, first = ddp_run
    with pytest.raises(Exception, match="holds no training state .* not from the final exported model"):
        fit_experiment(config.with_updates({"resources.num_workers": 1}), "wrong", tmp_path,
                       resume_from=Checkpoint.from_directory(first.checkpoint.path))


def test_a_run_started_again_after_its_final_report_reports_it_again_without_training(ddp_run, tmp_path):
    """A study stopped between a trial's final report and its end restarts the trial on --resume: its Ray Train run
    (same name, same storage) restores the exported model as its latest checkpoint and reports the same final
    scores and model again instead of training a second time."""
    from ner_ray.train.run import run_trainer

    config = ddp_run[0].with_updates({"resources.num_workers": 1, "train.output_dir": str(tmp_path)})
    first = run_trainer(config, "again", tmp_path)
    assert json.loads((Path(first.checkpoint.path) / FINAL_REPORT).read_text())["test_f1"] == first.metrics["test_f1"]
    again = run_trainer(config, "again", tmp_path)
    assert again.error is None
    for key in ("test_f1", "dev_f1", "train_seconds", "resumed_from_step", "final"):
        assert again.metrics[key] == first.metrics[key], key
    assert evaluate_model(again.checkpoint.path, "demo", "test")["test_f1"] == pytest.approx(first.metrics["test_f1"])


OFFLOAD = pytest.mark.slow(reason="ZeRO-Offload steps with DeepSpeedCPUAdam, a C++ op compiled on first use (minutes)")
STAGE3 = pytest.mark.slow(reason="a third two-worker run; ZeRO-2 covers the DeepSpeed path by default")


@pytest.mark.parametrize("stage, offload", [(2, "none"), pytest.param(3, "none", marks=STAGE3),
                                            pytest.param(2, "cpu", marks=OFFLOAD), pytest.param(3, "cpu", marks=OFFLOAD)])
def test_deepspeed_zero_on_two_cpu_workers(ray_session, tiny, tmp_path, stage, offload):
    from ner_ray.train.run import fit_experiment

    config = tiny_study(tiny, tmp_path, **{"resources.num_workers": 2, "train.deepspeed": {"stage": stage, "offload": offload}})
    result = fit_experiment(config, f"zero{stage}", tmp_path)
    assert_final_metrics(result)  # under ZeRO-3 this also shows that the export gathered the sharded weights
    checkpoint, _ = step_checkpoints(result)[-1]
    shards = sorted(p.name for p in (checkpoint / "checkpoint").glob("global_step*/*optim_states.pt"))
    assert shards == ["zero_pp_rank_0_mp_rank_00_optim_states.pt", "zero_pp_rank_1_mp_rank_00_optim_states.pt"]
    # gloo ZeRO compiles nothing (use_cpu_accelerator skips DeepSpeed's shared-memory kernel).
    assert sorted(p.name for p in ray_session.iterdir()) == (["cpu_adam"] if offload == "cpu" else [])


@pytest.mark.slow(reason="two worker start-ups in one run")
def test_failure_config_recovers_from_a_killed_worker(ray_session, tiny, tmp_path):
    from ner_ray.train.run import fit_experiment

    # 12 steps with a checkpoint every 2: the kill lands mid-training, the restart resumes from the checkpoint.
    config = tiny_study(tiny, tmp_path, **{"train.max_steps": 12, "train.eval_steps": 2})
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=kill_worker_after_first_checkpoint, args=(tmp_path / "ray", killed, stop))
    killer.start()
    try:
        result = fit_experiment(config, "crash", tmp_path, max_failures=1)
    finally:
        stop.set()
        killer.join()
    assert len(killed) == 1 and not psutil.pid_exists(killed[0])
    metrics = assert_final_metrics(result)
    # The replacement worker continued from a checkpoint of the killed one instead of starting over.
    assert metrics["resumed_from_step"] in (2, 4, 6, 8, 10)
    last, reported = step_checkpoints(result)[-1]
    assert [step for step, _ in evaluations(last)] == list(range(2, reported["step"] + 1, 2))


def test_crf_family_trains_on_two_ddp_workers(ray_session, tiny, tmp_path):
    """The CRF head sits outside the encoder forward: under DDP the family must reach it through the wrapper."""
    from ner_ray.train.run import fit_experiment

    config = tiny_study(tiny, tmp_path, **DDP, **{"model.family": "crf"})
    assert_final_metrics(fit_experiment(config, "crf-ddp", tmp_path))
