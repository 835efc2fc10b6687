"""Throughput, one run side by side on the same model (minilm-l6), data (NCBI-disease train BIO
sentences), batch size and machine:
  1. the seeds' plain HF Trainer script, every sentence padded to 256 tokens, fp32;
  2. the same script with dynamic padding, length-grouped batches and the precision ner_ray picks
     (`train.precision: auto`: bf16 where the CPU/GPU multiplies it natively, else fp32);
  3. ner_ray's path (`ner-ray train`: TorchTrainer, 1 worker) with its defaults.
Steady-state sentences/s exclude the first 5 steps and evaluation; Ray's start-up is reported apart.

    python benchmarks/throughput.py --steps 40
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from plain_hf import run as run_plain  # noqa: E402
from record import record  # noqa: E402

from ner_ray.config import StudyConfig  # noqa: E402
from ner_ray.train.run import train_experiment  # noqa: E402
from ner_ray.train.trainer import precision_flags  # noqa: E402


def run_ours(data_dir: str, steps: int, batch_size: int) -> dict:
    os.environ["NER_RAY_DATA"] = data_dir
    config = StudyConfig.model_validate({
        "data": {"corpus": "ncbi_disease", "format": "bio", "test_split": None, "max_length": 256},
        "model": {"name": "minilm-l6", "lora": None},
        "train": {"max_steps": steps, "batch_size": batch_size, "lr": 1e-4, "eval_steps": steps, "output_dir": "runs/bench_throughput"},
        "resources": {"num_workers": 1, "cpus_per_worker": 2},
    })
    start = time.perf_counter()
    metrics = train_experiment(config, "throughput", Path("runs/bench_throughput"))
    wall = time.perf_counter() - start
    return {"steady_sentences_per_second": metrics["steady_samples_per_second"], "wall_seconds": wall,
            "train_seconds": metrics["train_seconds"], "startup_seconds": wall - metrics["train_seconds"], "steps": steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    args = parser.parse_args()
    bio = Path(args.data_dir) / "ncbi_disease/conll/train.tsv"
    padded = run_plain(bio, "max_length", bf16=False, steps=args.steps, batch_size=args.batch_size)
    bf16 = precision_flags("auto")["bf16"]
    dynamic = run_plain(bio, "dynamic", bf16=bf16, steps=args.steps, batch_size=args.batch_size, group_by_length=True)
    ours = run_ours(args.data_dir, args.steps, args.batch_size)
    result = {
        "plain_padded_256_fp32": padded, "plain_dynamic_grouped": dynamic, "ner_ray_torchtrainer": ours,
        "speedup_vs_padded": ours["steady_sentences_per_second"] / padded["steady_sentences_per_second"],
        "ray_steady_overhead_vs_dynamic": 1 - ours["steady_sentences_per_second"] / dynamic["steady_sentences_per_second"],
    }
    table = "\n".join([
        "| run | steady sentences/s | wall s |", "| --- | ---: | ---: |",
        f"| plain HF, padded to 256, fp32 (seeds) | {padded['steady_sentences_per_second']:.1f} | {padded['wall_seconds']:.0f} |",
        f"| plain HF, dynamic padding, grouped, {'bf16' if bf16 else 'fp32'} | {dynamic['steady_sentences_per_second']:.1f} | {dynamic['wall_seconds']:.0f} |",
        f"| ner_ray TorchTrainer (1 worker) | {ours['steady_sentences_per_second']:.1f} | {ours['wall_seconds']:.0f} "
        f"(start-up {ours['startup_seconds']:.0f}) |",
        "", f"speed-up vs padded: {result['speedup_vs_padded']:.2f}x; Ray steady-state overhead vs dynamic: "
        f"{100 * result['ray_steady_overhead_vs_dynamic']:.1f}%",
    ])
    record("Throughput: ner_ray vs a plain HF Trainer script (NCBI-disease train sentences, minilm-l6)", result, table)


if __name__ == "__main__":
    main()
