"""One Hugging Face Trainer subclass for every family: the family supplies loss, decoding and parameter
groups, the Trainer supplies the loop (DDP, DeepSpeed, bf16, gradient accumulation, best-checkpoint
selection). Also here: TrainingArguments built from the study's train block. The callbacks that plan
evaluations and report to Ray are in callbacks.py.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch
from transformers import Trainer, TrainingArguments

from ner_ray.config import StudyConfig
from ner_ray.families.tagger import unwrap
from ner_ray.inference.predict import eval_batch_size, resolve_precision

# HF's own step interval for evaluation and saving, set beyond any run: a run evaluates (and saves) exactly at
# the steps of its evaluation plan (callbacks.EvaluationPlan, train/schedule.py), which also covers the last
# step, where HF evaluates and saves by itself.
NEVER = 1 << 62


class FamilyTrainer(Trainer):
    """The Trainer with the family's loss, decoding and parameter groups; predictions are the family's rows."""

    def __init__(self, *args: Any, family: Any, **kwargs: Any):
        self.family = family
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
            rows = self.family.decode(unwrap(model), outputs, inputs)  # under the same autocast (generation too)
        return loss.detach(), rows, inputs.get("labels")

    def _get_eval_sampler(self, eval_dataset):
        # HF groups evaluation batches by length too when train_sampling_strategy is group_by_length, which
        # returns predictions out of example order; decoding maps row i to window i, so keep them in order.
        if eval_dataset is None or self.args.world_size > 1:
            return None  # distributed: HF/Accelerate shard sequentially and gather back in order
        return torch.utils.data.SequentialSampler(eval_dataset)

    def create_optimizer(self, model=None):
        """AdamW over the family's parameter groups (each at train.lr x its multiplier), weight decay off for
        biases and norms as HF does."""
        if self.optimizer is None:
            decay = set(self.get_decay_parameter_names(self.model))
            names = {id(p): n for n, p in self.model.named_parameters()}
            groups: dict[tuple[float, bool], list] = defaultdict(list)
            for group in self.family.parameter_groups(self.model):
                for param in group.parameters:
                    groups[(group.lr_multiplier, names[id(param)] in decay)].append(param)
            optimizer_cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(self.args, self.model)
            self.optimizer = optimizer_cls(
                [{"params": params, "weight_decay": self.args.weight_decay if decays else 0.0,
                  "lr": self.args.learning_rate * multiplier}
                 for (multiplier, decays), params in groups.items() if params],
                **kwargs,
            )
        return self.optimizer


def training_arguments(config: StudyConfig, output_dir: str, logging_steps: int, deepspeed: dict | None) -> TrainingArguments:
    """The HF TrainingArguments of a study: the best checkpoint (by dev F1) kept and loaded at the end; when to
    evaluate and save is the evaluation plan's (callbacks.EvaluationPlan)."""
    train = config.train
    precision = resolve_precision(train.precision)
    # QLoRA's optimiser: 8-bit AdamW states in paged memory (bitsandbytes, CUDA); HF's default AdamW otherwise
    optimizer = {"optim": "paged_adamw_8bit"} if config.model.quantize and torch.cuda.is_available() else {}
    return TrainingArguments(
        **optimizer,
        output_dir=output_dir,
        num_train_epochs=train.epochs,
        max_steps=train.max_steps or -1,
        learning_rate=train.lr,
        per_device_train_batch_size=train.batch_size,
        per_device_eval_batch_size=eval_batch_size(train),
        gradient_accumulation_steps=train.grad_accum,
        weight_decay=train.weight_decay,
        warmup_steps=train.warmup_ratio,
        lr_scheduler_type=train.lr_scheduler,
        max_grad_norm=train.max_grad_norm,
        seed=train.seed,
        eval_strategy="steps",
        eval_steps=NEVER,
        save_strategy="steps",
        save_steps=NEVER,
        save_total_limit=2,
        save_only_model=False,
        load_best_model_at_end=True,
        metric_for_best_model="f1",
        greater_is_better=True,
        logging_steps=logging_steps,
        train_sampling_strategy="group_by_length" if train.group_by_length else "random",
        gradient_checkpointing=train.gradient_checkpointing,
        label_names=["labels"],
        remove_unused_columns=False,
        report_to="none",
        disable_tqdm=False,
        use_cpu=not torch.cuda.is_available(),
        deepspeed=deepspeed,
        dataloader_num_workers=0,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
    )


