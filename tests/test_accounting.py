"""Run accounting: the training-memory figure (peak while training minus the loaded process)."""

import torch

from ner_ray.train.accounting import TrainingMemory, current_rss_mb, peak_memory_mb


def test_training_memory_counts_what_is_allocated_inside_and_not_before():
    before = torch.ones(64 * 2**20 // 4)  # 64 MiB held from before training: part of the baseline
    with TrainingMemory() as memory:
        inside = torch.ones(128 * 2**20 // 4)  # 128 MiB touched while training, then freed
        del inside
    assert memory.mb is not None, "this Linux kernel refused /proc/self/clear_refs"
    assert 120 <= memory.mb <= 128 + 64, memory.mb
    assert peak_memory_mb() >= current_rss_mb() - 1  # the reset never lowers the reported peak
    del before


def test_peak_memory_never_drops_below_the_peak_before_a_reset():
    spike = torch.ones(96 * 2**20 // 4)
    del spike
    peak = peak_memory_mb()
    with TrainingMemory():
        pass
    assert peak_memory_mb() >= peak
