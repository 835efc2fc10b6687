"""What a run cost: wall seconds, peak memory, trainable-parameter share, training throughput.

Peak memory is the process's peak resident set size on CPU (what the OS had to give the run) and
`torch.cuda.max_memory_allocated` on GPU. Training memory is the part of it that training adds on top of
the loaded model, data and libraries (gradients, optimizer state, activations): see `TrainingMemory`.
"""

from __future__ import annotations

import resource
import sys
import time

import torch
from torch import nn

_peak_floor_mb = 0.0  # the peak before `TrainingMemory` reset the counters: peak_memory_mb never reports less


def _on_gpu() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_initialized()


def peak_memory_mb() -> float:
    """Peak GPU memory allocated (when CUDA is in use) or the process's peak RSS, in MiB."""
    if _on_gpu():
        return max(_peak_floor_mb, torch.cuda.max_memory_allocated() / 2**20)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return max(_peak_floor_mb, peak / 2**20 if sys.platform == "darwin" else peak / 2**10)


class TrainingMemory:
    """Memory that training adds to the loaded process: the peak while training minus what was in use
    when it started. On CPU a small model's peak RSS is mostly the shared Python/torch/Ray/data baseline
    (about 0.7 GB with minilm-l6 loaded), so LoRA and full fine-tuning differ clearly only in this figure.

    CPU (Linux): RSS at the start, then the kernel's high-water mark (VmHWM), reset at the start through
    /proc/self/clear_refs; `mb` is None where the kernel refuses the reset. GPU: memory_allocated at the
    start and max_memory_allocated after torch.cuda.reset_peak_memory_stats().
    """

    def __init__(self) -> None:
        self.start_mb: float | None = None  # None: the peak could not be reset, so nothing is measured
        self.mb: float | None = None

    def __enter__(self) -> TrainingMemory:
        global _peak_floor_mb
        _peak_floor_mb = peak_memory_mb()
        if _on_gpu():
            self.start_mb = torch.cuda.memory_allocated() / 2**20
            torch.cuda.reset_peak_memory_stats()
            return self
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # 5: reset the peak RSS to the current RSS (Linux >= 4.0)
            self.start_mb = current_rss_mb()
        except OSError:
            pass
        return self

    def __exit__(self, *exc) -> None:
        if self.start_mb is None:
            return
        peak = torch.cuda.max_memory_allocated() / 2**20 if _on_gpu() else _rss_high_water_mb()
        self.mb = None if peak is None else max(0.0, peak - self.start_mb)


def _rss_high_water_mb() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**10  # kB
    except OSError:
        pass
    return None


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
