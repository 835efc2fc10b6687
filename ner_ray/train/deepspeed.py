"""DeepSpeed ZeRO configs for the Hugging Face Trainer, from `train.deepspeed: {stage, offload}`.

Batch sizes, accumulation, clipping and precision are "auto": the Trainer fills them from its own
arguments, so the two never disagree. Our optimizer is a plain torch AdamW (HF builds it), which
ZeRO accepts with `zero_allow_untested_optimizer`. Also here: running ZeRO on CPU workers (gloo),
and gathering ZeRO-3's sharded parameters for export.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ner_ray.config import DeepSpeedConfig

if TYPE_CHECKING:
    from torch import nn


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


def use_cpu_accelerator() -> None:
    """Run DeepSpeed on a CPU worker: call before DeepSpeed is first imported in the process.

    DeepSpeed picks its accelerator once per process, CUDA whenever the machine has a GPU, even for a
    worker that Ray gave none. On CPU it would also JIT-compile its shared-memory all-reduce kernel
    (minutes of C++ on first use, an error where no compiler is installed); that kernel serves only
    tensor-parallel inference, so ZeRO training loses nothing by communicating through gloo instead.
    """
    os.environ["DS_ACCELERATOR"] = "cpu"
    try:
        import deepspeed.ops
    except ImportError as err:
        raise ImportError("train.deepspeed needs DeepSpeed; install it with pip install 'ner_ray[ray]'") from err

    # DeepSpeed probes every op once and keeps the answers in this module dict; marking the kernel
    # unavailable makes deepspeed.comm fall back to torch.distributed, its documented behaviour
    # on platforms without the kernel.
    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False


@contextlib.contextmanager
def gathered_parameters(model: nn.Module, settings: DeepSpeedConfig | None) -> Iterator[None]:
    """Inside the block every parameter of `model` is whole, also under ZeRO-3 (which keeps only a
    shard of each large parameter per worker). Collective: every worker must enter it."""
    if settings is None or settings.stage != 3:
        yield
        return
    import deepspeed

    with deepspeed.zero.GatheredParameters(list(model.parameters()), modifier_rank=None):
        yield
