"""What a run cost: wall seconds, peak memory, trainable-parameter share, training throughput.

Peak memory is the process's peak resident set size on CPU (what the OS had to give the run) and
`torch.cuda.max_memory_allocated` on GPU.
"""

from __future__ import annotations

import resource
import sys
import time

import torch
from torch import nn


def peak_memory_mb() -> float:
    """Peak GPU memory allocated (when CUDA is in use) or the process's peak RSS, in MiB."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.max_memory_allocated() / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def current_rss_mb() -> float:
    """The process's resident set size now, in MiB (Linux /proc; falls back to the peak)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * resource.getpagesize() / 2**20
    except OSError:
        return peak_memory_mb()


def trainable_percent(model: nn.Module) -> float:
    """Share of parameters that receive gradients, in percent."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return 100.0 * trainable / total if total else 0.0


class Stopwatch:
    """Wall seconds since construction."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start


class ThroughputMeter:
    """Steady-state training throughput: windows per second over the optimizer steps after a warm-up,
    with evaluation and checkpoint time taken out (start-up is reported apart, as `train_seconds`).

    Fed by `ThroughputCallback` (trainer.py) with the wall time of each training step.
    """

    def __init__(self, samples_per_step: int, warmup_steps: int = 5):
        self.samples_per_step = samples_per_step
        self.warmup_steps = warmup_steps
        self.step_seconds: list[float] = []

    def add(self, seconds: float) -> None:
        self.step_seconds.append(seconds)

    @property
    def samples_per_second(self) -> float:
        steady = self.step_seconds[self.warmup_steps :] or self.step_seconds
        return self.samples_per_step * len(steady) / sum(steady) if steady and sum(steady) > 0 else 0.0
