"""`train_loop_per_worker`: the one training path, run by every Ray Train worker of `ner-ray train`,
of every Tune trial and of the tests.

It loads and encodes the data, builds the family's model, trains with the HF Trainer (reporting dev
metrics and a checkpoint to Ray at every evaluation, resuming from `ray.train.get_checkpoint()`), then
scores the best checkpoint on the test split and reports the final metrics with the exported model.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any

from ner_ray.config import StudyConfig

PREDICTIONS_FILE = "predictions.pubtator"  # in the exported model: the best checkpoint's predictions on the scored split


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """Ray Train entry point; `loop_config` = {"config": StudyConfig as JSON, "work_dir": str,
    "concurrent_trials": int, "resume_from": ray.train.Checkpoint or None}. Within a run, the latest reported
    checkpoint (a restart after a worker failure) takes precedence over `resume_from`."""
    import ray.train
    import torch
    from transformers import AutoTokenizer, TrainerState, set_seed

    from ner_ray.data.pubtator import format_pubtator
    from ner_ray.families.base import FAMILIES
    from ner_ray.families.models import resolve_model
    from ner_ray.metrics import evaluate_entities
    from ner_ray.train.accounting import (
        Stopwatch,
        ThroughputMeter,
        TrainingMemory,
        peak_memory_mb,
        trainable_percent,
    )
    from ner_ray.train.data import prepare_data
    from ner_ray.train.deepspeed import (
        deepspeed_config,
        gathered_parameters,
        use_cpu_accelerator,
    )
    from ner_ray.train.export import save_model
    from ner_ray.train.predict import (
        extra_metrics,
        flat_metrics,
        predicted_documents,
        score,
        split_predictions,
    )
    from ner_ray.train.run import worker_threads
    from ner_ray.train.trainer import (
        NerTrainer,
        RayReportCallback,
        ThroughputCallback,
        UnfreezeCallback,
        training_arguments,
    )

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

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(config.model.name))
    data, family = prepare_data(config, FAMILIES.get(config.model.family), tokenizer)
    train_split = data.splits[config.data.train_split]
    dev_split = data.splits[config.data.dev_split]
    test_split = data.splits.get(config.data.test_split) if config.data.test_split else None
    model = family.build()
    scheme = config.data.label_scheme

    def compute_metrics(prediction) -> dict[str, float]:
        ids, extra = split_predictions(prediction.predictions)
        scores = score(dev_split.documents, dev_split.examples, ids, data.labels, scheme)
        return {**flat_metrics(scores), **extra_metrics(family, extra, dev_split.examples)}

    per_step = config.train.batch_size * world * config.train.grad_accum
    steps_per_epoch = max(1, math.ceil(len(train_split.examples) / per_step))
    work_dir = Path(loop_config["work_dir"])
    args = training_arguments(config, str(work_dir / "hf"), steps_per_epoch, deepspeed_config(config.train.deepspeed))
    accounting = {"trainable_percent": trainable_percent(model), "train_windows": len(train_split.examples)}
    meter = ThroughputMeter(per_step)
    callbacks = [RayReportCallback(accounting), ThroughputCallback(meter)]
    lora = config.model.lora
    if lora is not None and lora.unfreeze_last_epoch:
        if world > 1 or config.train.deepspeed is not None:
            raise ValueError("model.lora.unfreeze_last_epoch needs resources.num_workers: 1 and no train.deepspeed "
                             "(DDP and ZeRO fix the trainable parameters when training starts)")
        callbacks.append(UnfreezeCallback(config.train.lr))
    trainer = NerTrainer(
        model=model, args=args, family=family, head_lr_multiplier=config.model.head.lr_multiplier,
        train_dataset=[e.features for e in train_split.examples],
        eval_dataset=[e.features for e in dev_split.examples],
        data_collator=family.collate, compute_metrics=compute_metrics, callbacks=callbacks,
    )

    clock = Stopwatch()
    checkpoint = ray.train.get_checkpoint() or loop_config.get("resume_from")
    resumed_from_step = 0
    with TrainingMemory() as training_memory:
        if checkpoint is None:
            output = trainer.train()
        else:
            with checkpoint.as_directory() as restored:
                state = Path(restored) / RayReportCallback.CHECKPOINT_NAME
                if not state.is_dir():
                    raise ValueError(f"checkpoint {checkpoint.path} holds no training state (no {state.name}/ folder): resume "
                                     "from a checkpoint reported at an evaluation, not from the final exported model")
                resumed_from_step = TrainerState.load_from_json(str(state / "trainer_state.json")).global_step
                output = trainer.train(resume_from_checkpoint=str(state))
    train_seconds = clock.seconds

    best_dev = trainer.evaluate()  # the best checkpoint is loaded at the end of training
    final: dict[str, Any] = {
        "dev_f1": best_dev["eval_f1"],
        "train_seconds": train_seconds,
        "train_samples_per_second": output.metrics.get("train_samples_per_second", 0.0),
        "steady_samples_per_second": meter.samples_per_second,  # all workers together, warm-up and evaluation excluded
        "peak_memory_mb": peak_memory_mb(),
        "training_memory_mb": training_memory.mb,  # peak minus the loaded process at the start of training
        "threads_per_worker": torch.get_num_threads(),
        "resumed_from_step": resumed_from_step,
        **accounting,
        "final": True,  # the last report of a run (Tune adds its own `done`)
    }
    # The best checkpoint scores the test split (or, with no test split, the dev split again); its
    # predictions travel with the exported model as PubTator, beside the gold text, for error analysis.
    scored = test_split if test_split is not None else dev_split
    trainer.compute_metrics = None  # its metrics are the dev split's; the scored split is scored below
    ids, extra = split_predictions(trainer.predict([e.features for e in scored.examples]).predictions)
    predicted = predicted_documents(scored.documents, scored.examples, ids, data.labels, scheme)
    scores = evaluate_entities(scored.documents, predicted)
    final.update(extra_metrics(family, extra, scored.examples))
    final.update({k: scores[k] for k in ("f1", "precision", "recall", "per_type", "untyped", "overlap")})
    final["scored_split"] = config.data.test_split if test_split is not None else config.data.dev_split
    with tempfile.TemporaryDirectory() as tmp:
        exported = None
        with gathered_parameters(trainer.model, config.train.deepspeed):  # every rank joins; rank 0 writes
            if rank == 0:
                save_model(trainer.model, family, tmp)
                Path(tmp, PREDICTIONS_FILE).write_text(format_pubtator(predicted), encoding="utf-8")
                exported = ray.train.Checkpoint.from_directory(tmp)
        ray.train.report(metrics=final, checkpoint=exported)
