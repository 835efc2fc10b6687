"""`train_loop_per_worker`: the one training path, run by every Ray Train worker of `ner-ray train`, of every
Tune trial and of the tests, in three steps:

  setup   the data, the family, its model and the HF Trainer (evaluating and reporting to Ray as planned);
  fit     train, resuming from `ray.train.get_checkpoint()` (a restarted worker) or a given checkpoint;
  finish  the best checkpoint's dev scores, its test scores (through ner_ray.inference.evaluate, the model
          seeing the test documents without their annotations), the exported model and the final report.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ner_ray.config import ResourcesConfig, StudyConfig


@dataclass
class Run:
    """What setup builds for one worker."""

    config: StudyConfig
    rank: int
    data: Any  # train.data.TrainingData
    trainer: Any  # train.trainer.FamilyTrainer
    meter: Any  # accounting.ThroughputMeter
    accounting: dict[str, Any]
    precision: str  # bf16 / fp16 / fp32: what train.precision resolved to here
    plan: Any  # callbacks.EvaluationPlan


@dataclass
class Fitted:
    output: Any  # HF TrainOutput
    train_seconds: float
    training_memory_mb: float | None
    resumed_from_step: int


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """Ray Train entry point; `loop_config` = {"config": StudyConfig as JSON, "work_dir": str,
    "concurrent_trials": int, "resume_from": ray.train.Checkpoint or None}. Within a run, the latest reported
    checkpoint (a restart after a worker failure) takes precedence over `resume_from`."""
    import ray.train

    from ner_ray.train.cpu_isolation import restore_training_thread

    restore_training_thread()  # first: the OpenMP threads this thread starts inherit its scheduling policy
    restored = ray.train.get_checkpoint()
    if restored is not None and report_again(restored):
        return
    run = setup(loop_config)
    fitted = fit(run, restored or loop_config.get("resume_from"))
    finish(run, fitted)


def report_again(checkpoint: Any) -> bool:
    """A run started again after its final report (a study stopped between a trial's last report and its end,
    then resumed; a worker lost while the run shut down) has the exported model as its latest checkpoint: report
    it again with its saved final metrics instead of training. False for a checkpoint reported at an evaluation."""
    import ray.train

    from ner_ray.artifacts import FINAL_REPORT

    with checkpoint.as_directory() as folder:
        path = Path(folder) / FINAL_REPORT
        if not path.is_file():
            return False
        final = json.loads(path.read_text(encoding="utf-8"))
        rank0 = ray.train.get_context().get_world_rank() == 0
        ray.train.report(metrics=final, checkpoint=ray.train.Checkpoint.from_directory(folder) if rank0 else None)
    return True


def worker_threads(resources: ResourcesConfig, node_cpus: int, concurrent_trials: int = 1) -> int:
    """Torch threads of one Ray Train worker: resources.threads_per_worker, or the node's CPUs shared among
    the workers that can run on it at once (the trial's workers times the concurrent trials, no more than
    the node's CPUs hold at resources.cpus_per_worker each), so that concurrent trials do not oversubscribe it."""
    if resources.threads_per_worker is not None:
        return resources.threads_per_worker
    fit_on_node = max(1, int(node_cpus // resources.cpus_per_worker))
    return max(1, node_cpus // min(concurrent_trials * resources.num_workers, fit_on_node))


def setup(loop_config: dict[str, Any]) -> Run:
    import ray.train
    import torch
    from transformers import set_seed

    from ner_ray.inference.decode import predicted_documents
    from ner_ray.inference.evaluate import flat_scores, score_documents
    from ner_ray.inference.predict import resolve_precision
    from ner_ray.train.accounting import ThroughputMeter, trainable_percent
    from ner_ray.train.callbacks import (
        EvaluationPlan,
        RayReportCallback,
        ThroughputCallback,
        UnfreezeCallback,
    )
    from ner_ray.train.data import prepare_data
    from ner_ray.train.deepspeed import deepspeed_config, use_cpu_accelerator
    from ner_ray.train.schedule import evaluation_steps
    from ner_ray.train.trainer import FamilyTrainer, training_arguments

    config = StudyConfig.model_validate(loop_config["config"])
    if config.train.deepspeed is not None and not config.resources.use_gpu:
        use_cpu_accelerator()  # before anything imports deepspeed
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    if world == 1 and config.train.deepspeed is None:
        # One worker has nothing to synchronise, but Ray Train sets LOCAL_RANK, and from it accelerate would
        # wrap the model in DistributedDataParallel (a gradient-bucket copy and a gloo all-reduce per step).
        # Without it the HF Trainer trains the plain model.
        os.environ.pop("LOCAL_RANK", None)
    set_seed(config.train.seed)
    torch.set_num_threads(worker_threads(config.resources, os.cpu_count() or 1, loop_config.get("concurrent_trials", 1)))

    data = prepare_data(config)
    family = data.family
    model = family.build()

    def compute_metrics(prediction) -> dict[str, float]:
        predicted = predicted_documents(family, data.dev_documents, data.dev, prediction.predictions)
        scores = score_documents(data.dev_documents, predicted, family.types, relations=family.predicts_relations,
                                 typed=family.typed_spans)
        scores.update(family.extra_metrics(data.dev_documents, predicted))
        return flat_scores(scores)

    per_step = config.train.batch_size * world * config.train.grad_accum
    total_steps = config.train.max_steps or config.train.epochs * max(1, math.ceil(len(data.train) / per_step))
    interval = max(1, total_steps // len(evaluation_steps(total_steps, config.train)))
    args = training_arguments(config, str(Path(loop_config["work_dir"]) / "hf"), max(1, interval // 4),
                              deepspeed_config(config.train.deepspeed))
    accounting = {"trainable_percent": trainable_percent(model), "train_windows": len(data.train)}
    meter = ThroughputMeter(per_step)
    plan = EvaluationPlan(config.train, family)
    callbacks = [plan, RayReportCallback(accounting), ThroughputCallback(meter)]
    if config.train.early_stopping_patience is not None:
        from transformers import EarlyStoppingCallback

        callbacks.append(EarlyStoppingCallback(config.train.early_stopping_patience, config.train.early_stopping_threshold))
    lora = config.model.lora
    if lora is not None and lora.unfreeze_last_epoch:
        if world > 1 or config.train.deepspeed is not None:
            raise ValueError("model.lora.unfreeze_last_epoch needs resources.num_workers: 1 and no train.deepspeed "
                             "(DDP and ZeRO fix the trainable parameters when training starts)")
        callbacks.append(UnfreezeCallback(config.train.lr))
    trainer = FamilyTrainer(
        model=model, args=args, family=family,
        train_dataset=[e.features for e in data.train], eval_dataset=[e.features for e in data.dev],
        data_collator=family.collate, compute_metrics=compute_metrics, callbacks=callbacks,
    )
    return Run(config, rank, data, trainer, meter, accounting, resolve_precision(config.train.precision), plan)


def fit(run: Run, checkpoint: Any) -> Fitted:
    """Train (from the start, or from a checkpoint reported at an evaluation), timing and measuring it."""
    from transformers import TrainerState

    from ner_ray.train.accounting import Stopwatch, TrainingMemory
    from ner_ray.train.callbacks import RayReportCallback

    clock = Stopwatch()
    resumed_from_step = 0
    with TrainingMemory() as training_memory:
        if checkpoint is None:
            output = run.trainer.train()
        else:
            with checkpoint.as_directory() as restored:
                state = Path(restored) / RayReportCallback.CHECKPOINT_NAME
                if not state.is_dir():
                    raise ValueError(f"checkpoint {checkpoint.path} holds no training state (no {state.name}/ folder): resume "
                                     "from a checkpoint reported at an evaluation, not from the final exported model")
                resumed_from_step = TrainerState.load_from_json(str(state / "trainer_state.json")).global_step
                output = run.trainer.train(resume_from_checkpoint=str(state))
    return Fitted(output, clock.seconds, training_memory.mb, resumed_from_step)


def finish(run: Run, fitted: Fitted) -> None:
    """Score the best checkpoint (loaded at the end of training) on dev (its evaluation during training where that
    decoded fully: `EvaluationPlan.final_model_scores`) and test, export it with its test predictions, and make the
    run's final report."""
    import ray.train
    import torch

    from ner_ray.artifacts import FINAL_REPORT, PREDICTIONS
    from ner_ray.data.pubtator import format_pubtator
    from ner_ray.inference.decode import predicted_documents
    from ner_ray.inference.encode import evaluation_examples
    from ner_ray.inference.evaluate import evaluate, split_metrics
    from ner_ray.inference.model_files import save_model
    from ner_ray.train.accounting import peak_memory_mb
    from ner_ray.train.deepspeed import gathered_parameters

    trainer, family, data, config = run.trainer, run.data.family, run.data, run.config
    best_dev = run.plan.final_model_scores(trainer.args, trainer.state) or trainer.evaluate()
    final: dict[str, Any] = {
        **{"dev_" + key[5:]: value for key, value in best_dev.items() if key.startswith("eval_")},
        "train_seconds": fitted.train_seconds,
        "train_samples_per_second": fitted.output.metrics.get("train_samples_per_second", 0.0),
        "steady_samples_per_second": run.meter.samples_per_second,  # all workers, warm-up and evaluation excluded
        "peak_memory_mb": peak_memory_mb(),
        "training_memory_mb": fitted.training_memory_mb,  # peak minus the loaded process at the start of training
        "threads_per_worker": torch.get_num_threads(),
        "resumed_from_step": fitted.resumed_from_step,
        "train_precision": run.precision,  # bf16 / fp16 / fp32, as train.precision resolved here
        **run.accounting,
        "final": True,  # the last report of a run (Tune adds its own `done`)
    }

    def predict(documents):  # every worker takes part; the Trainer shards and gathers
        examples = evaluation_examples(documents, family)
        return predicted_documents(family, documents, examples, trainer.predict([e.features for e in examples]).predictions)

    trainer.compute_metrics = None  # its metrics are the dev split's
    predicted = None
    final.update(test=None, test_f1=None, test_precision=None, test_recall=None)
    if data.test_documents is not None:
        scores, predicted = evaluate(predict, data.test_documents, family.extra_metrics, family.types,
                                     relations=family.predicts_relations, typed=family.typed_spans)
        final.update(test=scores, **split_metrics(scores, "test"))
    with tempfile.TemporaryDirectory() as tmp:
        exported = None
        with gathered_parameters(trainer.model, config.train.deepspeed):  # every rank joins; rank 0 writes
            if run.rank == 0:
                save_model(trainer.model, family, tmp, run.precision)
                Path(tmp, FINAL_REPORT).write_text(json.dumps(final, default=float), encoding="utf-8")  # what a restart reports again
                if predicted is not None:  # the test predictions beside the gold text, for error analysis
                    Path(tmp, PREDICTIONS).write_text(format_pubtator(predicted), encoding="utf-8")
                exported = ray.train.Checkpoint.from_directory(tmp)
        ray.train.report(metrics=final, checkpoint=exported)
