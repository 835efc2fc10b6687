"""QLoRA against bf16 LoRA on one GPU (family instruct, the same model, data, batch and steps): peak GPU memory and
step time of training steps, without Ray (the device image has torch, transformers and peft; bitsandbytes travels as
a wheel). Run on a GPU machine only; it refuses to start without CUDA or bitsandbytes.

    python benchmarks/qlora_gpu.py --model smollm2-135m --steps 20 --batch-size 4   (or --model a local folder)
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_steps import timed_steps, training_family
from record import record

from ner_ray.config import StudyConfig


def arm(model: str, quantize: str | None, steps: int, batch_size: int) -> dict:
    """Peak memory and median step time of `steps` optimiser steps of LoRA r16 on the demo corpus's three tasks."""
    config = StudyConfig.model_validate({
        "data": {"corpus": "demo", "max_length": 1024},
        "model": {"name": model, "family": "instruct", "quantize": quantize, "backend": "peft",
                  "lora": {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": "all-linear"}},
        "train": {"precision": "bf16", "gradient_checkpointing": True}, "resources": {"use_gpu": True}})
    family, examples = training_family(config, "demo")
    model_lm = family.build().cuda() if not quantize else family.build()
    model_lm.gradient_checkpointing_enable()
    loaded_mb = torch.cuda.memory_allocated() / 2**20
    params = [p for p in model_lm.parameters() if p.requires_grad]
    if quantize:
        import bitsandbytes as bnb

        optimizer = bnb.optim.PagedAdamW8bit(params, lr=2e-4)
    else:
        optimizer = torch.optim.AdamW(params, lr=2e-4)
    timed = timed_steps(family, model_lm, examples, steps, batch_size, optimizer)
    return {"quantize": quantize or "none (bf16 base)", "loaded_mb": round(loaded_mb, 1), "peak_mb": timed["peak_mb"],
            "median_step_s": timed["median_step_s"], "final_loss": timed["final_loss"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args()
    if not torch.cuda.is_available() or importlib.util.find_spec("bitsandbytes") is None:
        raise SystemExit("qlora_gpu.py runs on a CUDA GPU with bitsandbytes installed")
    arms = [arm(args.model, quantize, args.steps, args.batch_size) for quantize in (None, "4bit", None, "4bit")]
    result = {"model": args.model, "gpu": torch.cuda.get_device_name(), "steps": args.steps, "batch_size": args.batch_size,
              "arms": arms}
    record("QLoRA (4-bit) vs bf16 LoRA, family instruct, one GPU", result)


if __name__ == "__main__":
    main()
