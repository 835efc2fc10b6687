"""span_gen training on one GPU (issue 11's device check): SmolLM2-135M-Instruct (or --model), LoRA r8 on every linear
layer, bf16 autocast, gradient checkpointing, NCBI-disease training sentences, a few hundred steps with PEFT and, where
unsloth imports, with Unsloth (else recorded as absent); per backend: samples/s, tokens/s, peak GPU memory and MFU
against the GPU's dense bf16 peak. The family's own model, collate and loss, without Ray (Ray does not travel to the
device machine). Refuses to start without CUDA.

    python benchmarks/span_gen_gpu.py --steps 300 --batch-size 16 [--backends peft,unsloth] [--peak-tflops 989.4]

MFU counts model FLOPs only: 4 per body weight per token (forward and the input gradient; frozen weights get no weight
gradient, LoRA's own are negligible) and 4 per head weight per labelled token (the loss runs the head at the
completion only); attention's sequence-squared terms and checkpointing's recomputed forward are left out, so it is
a floor on the work the GPU did, not a flattering figure.
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
from ner_ray.families.generative import causal_lm_inside

PEAK_BF16_TFLOPS = {"H100 PCIe": 756.0, "H100": 989.4, "H200": 989.4, "A100": 312.0}  # dense, from the datasheets
NOT_BODY = ("embed_tokens", "lm_head", "lora_", "trainable_tokens", "token_adapter")


def peak_tflops(name: str, given: float | None) -> float:
    if given:
        return given
    for key, value in PEAK_BF16_TFLOPS.items():  # "H100 PCIe" before "H100"
        if key in name:
            return value
    raise SystemExit(f"no dense bf16 peak known for {name!r}: pass --peak-tflops")


def arm(backend: str, args: argparse.Namespace) -> dict:
    config = StudyConfig.model_validate({
        "data": {"corpus": "ncbi_disease", "max_length": 192},
        "model": {"name": args.model, "family": "span_gen", "backend": backend,
                  "lora": {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": "all-linear"}},
        "train": {"precision": "bf16", "gradient_checkpointing": True}, "resources": {"use_gpu": True}})
    family, examples = training_family(config, "ncbi_disease")
    model = family.build()
    if backend == "peft":  # Unsloth places its model and sets up its own checkpointing
        model = model.cuda()
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    lm = causal_lm_inside(model)
    body = sum(p.numel() for n, p in lm.named_parameters() if not any(part in n for part in NOT_BODY))
    head = lm.get_output_embeddings().weight.numel()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    timed = timed_steps(family, model, examples, args.steps, args.batch_size, optimizer)
    step_flops = 4 * body * timed["tokens_per_step"] + 4 * head * timed["labelled_tokens_per_step"]
    return {"backend": backend, **timed, "samples_per_second": args.batch_size / timed["median_step_s"],
            "tokens_per_second": timed["tokens_per_step"] / timed["median_step_s"], "body_parameters": body,
            "mfu": step_flops / timed["median_step_s"] / (peak_tflops(torch.cuda.get_device_name(), args.peak_tflops) * 1e12)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--backends", default="peft,unsloth")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the GPU's dense bf16 peak (default: by its name)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("span_gen_gpu.py runs on a CUDA GPU")
    arms = []
    for backend in args.backends.split(","):
        if backend == "unsloth" and importlib.util.find_spec("unsloth") is None:
            arms.append({"backend": "unsloth", "absent": "unsloth is not installed (the gpu extra)"})
            continue
        arms.append(arm(backend, args))
    result = {"model": args.model, "gpu": torch.cuda.get_device_name(), "steps": args.steps,
              "batch_size": args.batch_size, "arms": arms}
    record("span_gen training on one GPU: samples/s, peak memory, MFU (bf16, LoRA r8, gradient checkpointing)", result)


if __name__ == "__main__":
    main()
