"""HF Trainer callbacks of the training path: the evaluation plan, the report to Ray Train at every
evaluation, unfreezing the base model for the last epoch, and timing the optimiser steps."""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from ner_ray.config import TrainConfig
from ner_ray.families import peft as peft_seam
from ner_ray.train.accounting import ThroughputMeter, peak_memory_mb
from ner_ray.train.schedule import evaluation_steps

log = logging.getLogger(__name__)
UNFREEZE_LR_FACTOR = 0.1  # the final full-model epoch of "LoRA then unfreeze" runs at a tenth of train.lr


def evaluation_at(state: Any, step: int) -> dict[str, Any] | None:
    """The log-history entry of the dev evaluation at `step` (HF's `eval_*` keys, with step and epoch), or None."""
    return next((entry for entry in reversed(state.log_history) if entry.get("step") == step and "eval_f1" in entry), None)


class EvaluationPlan(TrainerCallback):
    """Evaluate and save at the steps of `schedule.evaluation_steps` (and nowhere else: the training
    arguments set HF's own interval beyond the run). The family decodes fully (a generative family: greedy)
    at the first evaluation of each epoch's end, and after training; in between it may use its cheaper decoding."""

    def __init__(self, train: TrainConfig, family: Any = None):
        self.train = train
        self.family = family
        self.steps: set[int] = set()
        self.epoch_ends: list[int] = []
        self.last_evaluated = 0
        self.fully_decoded: set[int] = set()  # the steps (of this process's training) evaluated with the full decoding

    def on_train_begin(self, args, state, control, **kwargs):
        self.steps = set(evaluation_steps(state.max_steps, self.train))
        epochs = max(1, math.ceil(state.num_train_epochs or 1))  # HF's count (it derives one from max_steps too)
        self.epoch_ends = sorted({math.ceil(k * state.max_steps / epochs) for k in range(1, epochs + 1)} | {state.max_steps})
        self.last_evaluated = state.global_step

    def on_step_end(self, args, state, control, **kwargs):
        step = state.global_step
        if step in self.steps:
            control.should_evaluate = True
            control.should_save = True
            full = any(self.last_evaluated < end <= step for end in self.epoch_ends)
            if self.family is not None:
                self.family.set_full_decoding(full)
            if full:
                self.fully_decoded.add(step)
            self.last_evaluated = step

    def on_train_end(self, args, state, control, **kwargs):
        if self.family is not None:
            self.family.set_full_decoding(True)  # the best checkpoint's dev scores, test, export: full decoding

    def final_model_scores(self, args, state) -> dict[str, float] | None:
        """The dev scores (`eval_*`) of the model the Trainer holds after training, from that same model's
        evaluation during training: the best checkpoint's (HF reloads it at the end: the weights evaluated and
        saved at that step) or, where none was reloaded, the last step's. None where that evaluation used the
        cheaper decoding, ran before a restart, or did not happen: then the model is evaluated again. (A generative
        family's full dev decoding is minutes of greedy generation; this saves running it twice.)"""
        reloaded = args.load_best_model_at_end and state.best_model_checkpoint is not None
        step = state.best_global_step if reloaded else state.global_step
        evaluation = evaluation_at(state, step) if step in self.fully_decoded else None
        return {key: value for key, value in evaluation.items() if key.startswith("eval_")} if evaluation else None


class RayReportCallback(TrainerCallback):
    """After the checkpoint saved with each evaluation, report that evaluation's dev metrics and the
    checkpoint to Ray Train (one report per evaluation, never a stale one).

    Metrics are renamed from HF's `eval_*` to `dev_*` (the names Tune ranks on); the checkpoint folder holds
    the HF checkpoint under `checkpoint/` (as Ray's own RayTrainReportCallback does).
    """

    CHECKPOINT_NAME = "checkpoint"

    def __init__(self, extra: dict[str, float] | None = None):
        self.extra = extra or {}

    def on_save(self, args, state, control, **kwargs):
        import ray.train
        from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

        evaluation = evaluation_at(state, state.global_step)
        if evaluation is None:  # a save without an evaluation at its step has nothing new to report
            log.warning("checkpoint at step %d has no evaluation; not reported to Ray", state.global_step)
            return
        losses = [entry["loss"] for entry in state.log_history if "loss" in entry]
        metrics: dict[str, Any] = {("dev_" + k[5:] if k.startswith("eval_") else k): v for k, v in evaluation.items()}
        if losses:
            metrics["loss"] = losses[-1]  # the latest training loss logged
        metrics.update(self.extra, step=state.global_step, epoch=state.epoch or 0.0, peak_memory_mb=peak_memory_mb())
        # this step's checkpoint by name: after a restart the folder may also hold a later, half-written checkpoint
        # of the killed worker, which "the last checkpoint" would pick
        source = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = None
            if source.is_dir() and ray.train.get_context().get_world_rank() == 0:
                shutil.copytree(source, Path(tmp, self.CHECKPOINT_NAME))
                checkpoint = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report(metrics=metrics, checkpoint=checkpoint)


class UnfreezeCallback(TrainerCallback):
    """LoRA, then the whole model: at the start of the last epoch every frozen weight becomes trainable, in
    a new optimiser group at UNFREEZE_LR_FACTOR x train.lr (constant for that epoch)."""

    def __init__(self, lr: float):
        self.lr = lr
        self.done = False

    def on_epoch_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        if self.done or state.epoch is None or int(round(state.epoch)) < int(args.num_train_epochs) - 1:
            return
        newly = peft_seam.unfreeze_base(model)
        if newly:
            target = getattr(optimizer, "optimizer", optimizer)
            target.add_param_group({"params": newly, "lr": self.lr * UNFREEZE_LR_FACTOR, "weight_decay": args.weight_decay})
        self.done = True


class ThroughputCallback(TrainerCallback):
    """Times each optimiser step (begin → end), so evaluation and saving never count as training time."""

    def __init__(self, meter: ThroughputMeter):
        self.meter = meter
        self._start: float | None = None

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self._start is not None:
            self.meter.add(time.perf_counter() - self._start)
            self._start = None
