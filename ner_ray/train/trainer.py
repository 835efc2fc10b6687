"""One Hugging Face Trainer subclass for every family: the family supplies loss and decoding, the
Trainer supplies the loop (DDP, DeepSpeed, bf16, gradient accumulation, best-checkpoint selection).

Also here: TrainingArguments built from the study's train block, a callback that reports dev metrics
and checkpoints to Ray Train at every evaluation, and one that unfreezes the encoder for the last epoch.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from ner_ray.config import StudyConfig
from ner_ray.families import peft as peft_seam
from ner_ray.families.tagger import unwrap
from ner_ray.train.accounting import peak_memory_mb
from ner_ray.train.predict import decode_batch

UNFREEZE_LR_FACTOR = 0.1  # the final full-model epoch of "LoRA then unfreeze" runs at a tenth of train.lr


class NerTrainer(Trainer):
    """The Trainer with the family's loss and decoding; predictions are label ids per position."""

    def __init__(self, *args: Any, family: Any, head_lr_multiplier: float = 1.0, **kwargs: Any):
        self.family = family
        self.head_lr_multiplier = head_lr_multiplier
        super().__init__(*args, **kwargs)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, outputs = self.family.loss(model, inputs)
        return (loss, outputs) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss, outputs = self.family.loss(model, inputs)
        if prediction_loss_only:
            return loss.detach(), None, None
        return loss.detach(), decode_batch(self.family, unwrap(model), outputs, inputs), inputs.get("labels")

    def _get_eval_sampler(self, eval_dataset):
        # HF groups evaluation batches by length too when train_sampling_strategy is group_by_length, which
        # returns predictions out of example order; decoding maps row i to window i, so keep them in order.
        if eval_dataset is None or self.args.world_size > 1:
            return None  # distributed: HF/Accelerate shard sequentially and gather back in order
        return torch.utils.data.SequentialSampler(eval_dataset)

    def create_optimizer(self, model=None):
        """AdamW with the head (everything outside the encoder) at lr x model.head.lr_multiplier."""
        if self.optimizer is None:
            model = self.model
            decay = set(self.get_decay_parameter_names(model))
            groups: dict[tuple[bool, bool], list] = defaultdict(list)
            for name, param in model.named_parameters():
                if param.requires_grad:
                    groups[(not name.startswith("encoder."), name in decay)].append(param)
            optimizer_cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(self.args, model)
            self.optimizer = optimizer_cls(
                [
                    {"params": params, "weight_decay": self.args.weight_decay if decays else 0.0,
                     "lr": self.args.learning_rate * (self.head_lr_multiplier if head else 1.0)}
                    for (head, decays), params in groups.items()
                ],
                **kwargs,
            )
        return self.optimizer


def precision_flags(precision: str) -> dict[str, bool]:
    """TrainingArguments bf16/fp16 for train.precision: auto = bf16 on CPUs with AMX/AVX512-BF16 and on
    bf16-capable GPUs, fp16 on older GPUs."""
    if precision == "auto":
        if torch.cuda.is_available():
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            precision = "bf16" if cpu_has_fast_bf16() else "fp32"
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AMX or AVX512-BF16); elsewhere bf16 is emulated and slow."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags for flag in (" amx_bf16", " avx512_bf16"))


def training_arguments(config: StudyConfig, output_dir: str, steps_per_epoch: int, deepspeed: dict | None) -> TrainingArguments:
    """The HF TrainingArguments of a study: dev evaluation + checkpoint at every report, best model kept."""
    train = config.train
    eval_steps = train.eval_steps or max(1, steps_per_epoch // train.evals_per_epoch)
    return TrainingArguments(
        output_dir=output_dir,
        num_train_epochs=train.epochs,
        max_steps=train.max_steps or -1,
        learning_rate=train.lr,
        per_device_train_batch_size=train.batch_size,
        per_device_eval_batch_size=train.eval_batch_size or train.batch_size * 2,
        gradient_accumulation_steps=train.grad_accum,
        weight_decay=train.weight_decay,
        warmup_steps=train.warmup_ratio,
        lr_scheduler_type=train.lr_scheduler,
        max_grad_norm=train.max_grad_norm,
        seed=train.seed,
        eval_strategy="steps",
        eval_steps=eval_steps,
        save_strategy="steps",
        save_steps=eval_steps,
        save_total_limit=2,
        save_only_model=False,
        load_best_model_at_end=True,
        metric_for_best_model="f1",
        greater_is_better=True,
        logging_steps=max(1, eval_steps // 4),
        train_sampling_strategy="group_by_length" if train.group_by_length else "random",
        gradient_checkpointing=train.gradient_checkpointing,
        label_names=["labels"],
        remove_unused_columns=False,
        report_to="none",
        disable_tqdm=False,
        use_cpu=not torch.cuda.is_available(),
        deepspeed=deepspeed,
        dataloader_num_workers=0,
        **precision_flags(train.precision),
    )


class RayReportCallback(TrainerCallback):
    """After every checkpoint save (= every evaluation), report dev metrics and the checkpoint to Ray Train.

    Metrics are renamed from HF's `eval_*` to `dev_*` (the name Tune ranks on); the checkpoint
    folder holds the HF checkpoint under `checkpoint/` (as Ray's own RayTrainReportCallback).
    """

    CHECKPOINT_NAME = "checkpoint"

    def __init__(self, extra: dict[str, float] | None = None):
        self.extra = extra or {}

    def on_save(self, args, state, control, **kwargs):
        import ray.train
        from transformers.trainer_utils import get_last_checkpoint

        metrics: dict[str, Any] = {}
        for log in state.log_history:
            metrics.update(log)
        metrics = {("dev_" + k[5:] if k.startswith("eval_") else k): v for k, v in metrics.items()}
        metrics.update(self.extra, step=state.global_step, epoch=state.epoch or 0.0, peak_memory_mb=peak_memory_mb())
        source = get_last_checkpoint(args.output_dir)
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = None
            if source is not None and ray.train.get_context().get_world_rank() == 0:
                shutil.copytree(source, Path(tmp, self.CHECKPOINT_NAME))
                checkpoint = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report(metrics=metrics, checkpoint=checkpoint)


class UnfreezeCallback(TrainerCallback):
    """LoRA, then the whole encoder: at the start of the last epoch every frozen encoder weight becomes
    trainable, in a new optimizer group at UNFREEZE_LR_FACTOR x train.lr (constant for that epoch)."""

    def __init__(self, lr: float):
        self.lr = lr
        self.done = False

    def on_epoch_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        if self.done or state.epoch is None or int(round(state.epoch)) < int(args.num_train_epochs) - 1:
            return
        encoder = unwrap(model).encoder
        newly = peft_seam.unfreeze_base(encoder)
        if newly:
            target = getattr(optimizer, "optimizer", optimizer)
            target.add_param_group({"params": newly, "lr": self.lr * UNFREEZE_LR_FACTOR, "weight_decay": args.weight_decay})
        self.done = True


class ThroughputCallback(TrainerCallback):
    """Times each optimizer step (begin → end), so evaluation and saving never count as training time."""

    def __init__(self, meter):
        self.meter = meter
        self._start = None

    def on_step_begin(self, args, state, control, **kwargs):
        import time

        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        import time

        if self._start is not None:
            self.meter.add(time.perf_counter() - self._start)
            self._start = None
