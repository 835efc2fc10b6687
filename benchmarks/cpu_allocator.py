"""Why a CPU training run's peak RSS grows epoch after epoch: glibc's allocator keeps the memory that freed
tensors held, and dynamic padding (a new batch shape every step) fragments it. Not a leak: `malloc_trim(0)`
gives it back, and the live tensors stay flat.

Each arm trains minilm-l6 for N steps (AdamW, bf16 autocast where the CPU has it, batch 16, sequence lengths
drawn uniformly from 16-128 tokens as dynamic padding produces them) in a fresh process, and reports its RSS
before training, its peak RSS, its RSS at the end, its RSS after `malloc_trim(0)` and its seconds; once with
glibc's defaults (what every run gets) and once with a fixed mmap threshold (`MALLOC_MMAP_THRESHOLD_=131072`:
every tensor above 128 KiB gets its own mapping, returned to the system when freed).

    python benchmarks/cpu_allocator.py --steps 120
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from memory_attribution import model_and_batch, train_step  # noqa: E402
from record import record  # noqa: E402

from ner_ray.inference.predict import resolve_precision  # noqa: E402

ARMS = {"full": None, "lora-r16 (all-linear, dropout 0.1)": {"r": 16, "alpha": 32, "dropout": 0.1}}
ALLOCATORS = {"glibc defaults": {}, "fixed mmap threshold (128 KiB)": {"MALLOC_MMAP_THRESHOLD_": "131072"}}
MB = 2**20


def train_steps(lora: dict | None, steps: int, autocast: bool) -> dict[str, float]:
    """In this process: N training steps at random lengths; RSS figures in MB and the seconds they took."""
    import psutil
    import torch

    family, model, _ = model_and_batch("minilm-l6", lora, 16, 128)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    lengths = random.Random(0)
    process = psutil.Process()
    before = process.memory_info().rss / MB
    start = time.perf_counter()
    for _ in range(steps):
        length = lengths.randint(16, 128)
        batch = {"input_ids": torch.randint(1000, 20000, (16, length)), "attention_mask": torch.ones(16, length, dtype=torch.long),
                 "labels": torch.randint(0, len(family.labels.labels), (16, length))}
        train_step(family, model, optimizer, batch, autocast)
    seconds = time.perf_counter() - start
    end = process.memory_info().rss / MB
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    return {"rss_before": before, "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rss_end": end,
            "rss_after_malloc_trim": process.memory_info().rss / MB, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--child", help=argparse.SUPPRESS)  # one arm, run in a fresh process
    args = parser.parse_args()
    autocast = resolve_precision("auto") == "bf16"
    if args.child:
        print(json.dumps(train_steps(json.loads(args.child), args.steps, autocast)))
        return
    result = {}
    for allocator, env in ALLOCATORS.items():
        for arm, lora in ARMS.items():
            child = subprocess.run([sys.executable, __file__, "--steps", str(args.steps), "--child", json.dumps(lora)],
                                   env={**os.environ, **env}, capture_output=True, text=True, check=True)
            result[f"{arm}, {allocator}"] = json.loads(child.stdout.strip().splitlines()[-1])
            print(arm, allocator, result[f"{arm}, {allocator}"], flush=True)
    table = "\n".join(["| arm | RSS before MB | peak RSS MB | RSS at the end MB | after malloc_trim MB | seconds |",
                       "| --- | ---: | ---: | ---: | ---: | ---: |"] + [
        f"| {name} | {r['rss_before']:.0f} | {r['peak_rss']:.0f} | {r['rss_end']:.0f} | {r['rss_after_malloc_trim']:.0f} | "
        f"{r['seconds']:.1f} |" for name, r in result.items()])
    record(f"CPU allocator: RSS of {args.steps} training steps at dynamic lengths (minilm-l6, batch 16, "
           f"{'bf16 autocast' if autocast else 'fp32'}, 1 process)", result, table)


if __name__ == "__main__":
    main()
