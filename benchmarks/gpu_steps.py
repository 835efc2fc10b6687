"""Timed training steps of a family's model on one CUDA GPU under bf16 autocast, without Ray (the device machines have
torch, transformers and peft; Ray does not travel there): the set-up and the loop the GPU benchmarks share."""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch

from ner_ray.config import StudyConfig
from ner_ray.inference.encode import encode_documents
from ner_ray.inference.evaluate import corpus_documents
from ner_ray.registry import FAMILIES

WARMUP_STEPS = 5  # not timed: CUDA kernels chosen, caches filled


def training_family(config: StudyConfig, corpus: str) -> tuple[Any, list]:
    """`config`'s family on `corpus`'s entity types and its training examples, with the GPU's memory counters reset
    after them, so that the peak the steps report counts from the model loaded next."""
    documents, types = corpus_documents(corpus, "train")
    family = FAMILIES.get(config.model.family)(config, types)
    examples = encode_documents(documents, family, training=True)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    return family, examples


def timed_steps(family: Any, model: Any, examples: list, steps: int, batch_size: int, optimizer: Any) -> dict:
    """`steps` optimiser steps over `examples` (cycled, in order): the median step time after WARMUP_STEPS, the mean
    tokens (attention mask) and completion tokens (labelled) a step, the last loss and the peak GPU memory."""
    times, tokens, labelled = [], [], []
    for step in range(steps):
        batch = family.collate([e.features for e in examples[(step * batch_size) % len(examples):][:batch_size]])
        batch = {k: v.cuda() if torch.is_tensor(v) else v for k, v in batch.items()}
        torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss, _ = family.loss(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        tokens.append(int(batch["attention_mask"].sum()))
        labelled.append(int((batch["labels"] != -100).sum()) if "labels" in batch else 0)
    steady = times[WARMUP_STEPS:] or times
    return {"median_step_s": statistics.median(steady), "tokens_per_step": statistics.mean(tokens),
            "labelled_tokens_per_step": statistics.mean(labelled), "final_loss": float(loss.detach()),
            "peak_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1)}
