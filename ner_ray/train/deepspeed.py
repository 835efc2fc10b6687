"""DeepSpeed ZeRO configs for the Hugging Face Trainer, from `train.deepspeed: {stage, offload}`.

Batch sizes, accumulation, clipping and precision are "auto": the Trainer fills them from its own
arguments, so the two never disagree. Our optimizer is a plain torch AdamW (HF builds it), which
ZeRO accepts with `zero_allow_untested_optimizer`.
"""

from __future__ import annotations

from ner_ray.config import DeepSpeedConfig


def deepspeed_config(settings: DeepSpeedConfig | None) -> dict | None:
    """The DeepSpeed JSON config as a dict, or None for plain DDP."""
    if settings is None:
        return None
    zero: dict = {"stage": settings.stage, "contiguous_gradients": True, "overlap_comm": False}
    if settings.offload == "cpu":
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": False}
        if settings.stage == 3:
            zero["offload_param"] = {"device": "cpu", "pin_memory": False}
    if settings.stage == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    return {
        "zero_optimization": zero,
        "train_batch_size": "auto",
        "train_micro_batch_size_per_gpu": "auto",
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "bf16": {"enabled": "auto"},
        "fp16": {"enabled": "auto"},
        "zero_allow_untested_optimizer": True,
        "wall_clock_breakdown": False,
    }
