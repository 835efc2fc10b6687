"""What the memory of one training step holds, by owner: weights, gradients, AdamW state, and the tensors
autograd saves for backward, attributed to the module that saved them (LoRA dropout, LoRA A/B, the base
linear layers, attention, layer norm, ...). `benchmarks/memory.py` measures peak memory; this says what
dominates it.

Counted, not sampled: one forward + loss of a full batch (batch 16 x 128 tokens, no padding: the largest
batch of NCBI-disease's 128-token windows) under `torch.autograd.graph.saved_tensors_hooks`, each saved
tensor's storage counted once (a tensor saved by three layers, like the input of query/key/value, is one
storage), for full fine-tuning and LoRA r16 (every linear layer or query/value; dropout 0.1 or 0), in fp32
and under bf16 autocast (what `train.precision: bf16` runs). The model is the family's own (`token_cls`,
built from the config as a training run builds it).

Beside the count, each arm trains 3 steps (AdamW, the same batch) under torch.profiler's memory timeline, and the
live tensors at the step's peak are shown by the profiler's categories (weights, AdamW state, activations, gradients,
temporaries): the measured check of the count. Neither includes the allocator's high-water mark (peak RSS), which
`benchmarks/memory.py` measures.

    python benchmarks/memory_attribution.py
    python benchmarks/memory_attribution.py --bert-base-shaped
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from memory import bert_base_shaped  # noqa: E402
from record import record  # noqa: E402

from ner_ray.config import StudyConfig  # noqa: E402
from ner_ray.registry import FAMILIES  # noqa: E402

ARMS = {
    "full": None,
    "lora-r16 all-linear, dropout 0.1": {"r": 16, "alpha": 32, "dropout": 0.1},
    "lora-r16 all-linear, dropout 0": {"r": 16, "alpha": 32, "dropout": 0.0},
    "lora-r16 query/value, dropout 0.1": {"r": 16, "alpha": 32, "dropout": 0.1, "target_modules": ["query", "value"]},
}
MB = 2**20


def owner(module_name: str, module: torch.nn.Module) -> str:
    """The row a saved tensor is counted in, from the innermost module that was running when it was saved."""
    if "lora_dropout" in module_name:
        return "LoRA dropout (a copy of each adapted layer's input, and its mask)"
    if "lora_A" in module_name or "lora_B" in module_name:
        return "LoRA A/B (their inputs and rank-r outputs)"
    if isinstance(module, torch.nn.Linear) or module_name.endswith("base_layer"):
        return "linear layers (inputs saved for the weight gradient)"
    if isinstance(module, torch.nn.LayerNorm):
        return "layer norm"
    if isinstance(module, torch.nn.Dropout):
        return "dropout outside LoRA (masks and outputs)"
    if isinstance(module, torch.nn.Embedding) or "embeddings" in module_name:
        return "embeddings"
    if "attention" in module_name:
        return "attention (scores, softmax, context)"
    if "intermediate" in module_name:
        return "feed-forward activation (GELU)"
    return "other (head, loss, residual adds)"


def saved_for_backward(model: torch.nn.Module, batch: dict[str, torch.Tensor], family, autocast: bool) -> dict[str, int]:
    """Bytes autograd holds for backward after one forward + loss, by owner (each storage once)."""
    stack: list[tuple[str, torch.nn.Module]] = [("", model)]
    handles = []
    def enter(name: str, module: torch.nn.Module) -> None:
        stack.append((name, module))

    def leave(*_) -> None:  # a forward hook that returned a value would replace the module's output
        stack.pop()

    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(lambda m, args, name=name: enter(name, m)))
        handles.append(module.register_forward_hook(leave))
    seen: set[int] = set()
    counted: dict[str, int] = defaultdict(int)

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in seen and not isinstance(tensor, torch.nn.Parameter):
            seen.add(storage.data_ptr())
            counted[owner(*stack[-1])] += storage.nbytes()
        return tensor

    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen |= weights  # the weights themselves are counted as weights, not as saved activations
    amp = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), amp:
            loss, _ = family.loss(model, batch)
        loss.backward()  # the step completes (the hooks kept every saved tensor alive until here)
    finally:
        for handle in handles:
            handle.remove()
    return dict(counted)


def model_and_batch(model_name: str, lora: dict | None, batch_size: int, tokens: int):
    """The family, its model in training mode, and one full batch of random token ids and labels."""
    config = StudyConfig.model_validate({"data": {"corpus": "demo", "max_length": tokens},
                                         "model": {"name": model_name, "lora": lora}})
    family = FAMILIES.get("token_cls")(config, ("Disease",))
    model = family.build()
    model.train()
    generator = torch.Generator().manual_seed(0)
    batch = {"input_ids": torch.randint(1000, 20000, (batch_size, tokens), generator=generator),
             "attention_mask": torch.ones(batch_size, tokens, dtype=torch.long),
             "labels": torch.randint(0, len(family.labels.labels), (batch_size, tokens), generator=generator)}
    return family, model, batch


def train_step(family, model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: dict[str, torch.Tensor],
               autocast: bool) -> None:
    """One optimizer step on the batch (under bf16 autocast when asked), gradients freed after it."""
    with torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext():
        loss, _ = family.loss(model, batch)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


TIMELINE = ("weights", "AdamW state", "inputs", "temporaries", "activations", "gradients", "autograd detail", "unknown")


def tensor_peak_mb(model_name: str, lora: dict | None, autocast: bool, batch_size: int, tokens: int) -> dict[str, float]:
    """torch.profiler's memory timeline of two AdamW steps (after one warm-up step, so the optimizer state
    exists): every live tensor's bytes by category at the moment their sum peaks. Tensors, not the process:
    the allocator's high-water mark (RSS) comes on top."""
    import tempfile

    from torch.profiler import ProfilerActivity, profile

    family, model, batch = model_and_batch(model_name, lora, batch_size, tokens)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)

    train_step(family, model, optimizer, batch, autocast)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True) as prof:
        train_step(family, model, optimizer, batch, autocast)
        train_step(family, model, optimizer, batch, autocast)
    with tempfile.TemporaryDirectory() as folder:
        prof.export_memory_timeline(f"{folder}/timeline.json", device="cpu")
        _, sizes = json.loads(Path(folder, "timeline.json").read_text())
    peak = max(sizes, key=sum)  # [unused, one entry per category in TIMELINE's order]
    return {f"at the peak: {name}": size / MB for name, size in zip(TIMELINE, peak[1:]) if size} | {"tensor peak": sum(peak) / MB}


def attribute(model_name: str, lora: dict | None, autocast: bool, batch_size: int, tokens: int) -> dict[str, float]:
    family, model, batch = model_and_batch(model_name, lora, batch_size, tokens)
    parameters = sum(p.numel() * p.element_size() for p in model.parameters())
    trainable = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    rows = {"weights": parameters / MB, "gradients": trainable / MB, "AdamW state (2 per trainable weight)": 2 * trainable / MB}
    saved = saved_for_backward(model, batch, family, autocast)
    rows.update({f"saved: {name}": size / MB for name, size in sorted(saved.items(), key=lambda kv: -kv[1])})
    rows["saved for backward, total"] = sum(saved.values()) / MB
    rows["total"] = rows["weights"] + rows["gradients"] + rows["AdamW state (2 per trainable weight)"] + rows["saved for backward, total"]
    rows["counted training memory (gradients + AdamW + saved)"] = rows["total"] - rows["weights"]
    rows.update(tensor_peak_mb(model_name, lora, autocast, batch_size, tokens))
    return rows


def table_rows(result: dict[str, dict[str, float]]) -> list[str]:
    """Rows in reading order: weights and optimizer, the count of saved tensors by owner (largest first), its
    total and the counted training memory, then the profiler's peak by category and its sum."""
    every = list(dict.fromkeys(row for arm in result.values() for row in arm))
    largest = {row: max(arm.get(row, 0.0) for arm in result.values()) for row in every}
    saved = sorted((r for r in every if r.startswith("saved: ")), key=lambda r: -largest[r])
    peak = [r for r in every if r.startswith("at the peak: ") and largest[r] > 0]
    return (["weights", "gradients", "AdamW state (2 per trainable weight)", *saved, "saved for backward, total",
             "counted training memory (gradients + AdamW + saved)", "total"] + peak + ["tensor peak"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--bert-base-shaped", action="store_true", help="a 110M-parameter encoder instead of minilm-l6")
    args = parser.parse_args()
    model, label = "minilm-l6", "minilm-l6"
    if args.bert_base_shaped:
        model, label = bert_base_shaped(Path("runs/bench_memory/bert-base-shaped").resolve()), "BERT-base-shaped encoder"
    torch.manual_seed(0)
    result = {}
    for precision, autocast in (("fp32", False), ("bf16 autocast", True)):
        for arm, lora in ARMS.items():
            result[f"{arm} ({precision})"] = attribute(model, lora, autocast, args.batch_size, args.tokens)
            print(f"{arm} ({precision}): {result[f'{arm} ({precision})']['total']:.0f} MB", flush=True)
    arms = list(result)
    rows = table_rows(result)
    table = "\n".join([f"| MB | {' | '.join(arms)} |", "| --- |" + " ---: |" * len(arms)] + [
        f"| {row} | " + " | ".join(f"{result[arm].get(row, 0.0):.1f}" for arm in arms) + " |" for row in rows])
    record(f"Memory attribution: one training step of {label}, batch {args.batch_size} x {args.tokens} tokens "
           "(weights, gradients, AdamW state, tensors saved for backward by owner)", result, table)


if __name__ == "__main__":
    main()
