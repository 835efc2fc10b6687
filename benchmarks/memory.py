"""Memory: peak memory of LoRA r16 vs full fine-tuning (minilm-l6, NCBI-disease windows, same batch),
each a short `ner-ray train` run of N optimizer steps through TorchTrainer (1 worker).

Peak memory is the worker process's peak RSS on CPU (torch.cuda.max_memory_allocated on GPU); the
ratio LoRA / full is the figure. On CPU that RSS includes the Python/torch/Ray/tokenizer/data baseline
that both runs share, which a 22M-parameter model's weights and optimizer state barely exceed.

    python benchmarks/memory.py --steps 20
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import record  # noqa: E402

from ner_ray.config import StudyConfig  # noqa: E402
from ner_ray.train.run import train_experiment  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    args = parser.parse_args()
    os.environ["NER_RAY_DATA"] = args.data_dir
    result = {}
    for name, lora in (("full", None), ("lora-r16", {"r": 16, "alpha": 32})):
        config = StudyConfig.model_validate({
            "data": {"corpus": "ncbi_disease", "max_length": 128, "test_split": None},
            "model": {"name": "minilm-l6", "lora": lora},
            "train": {"max_steps": args.steps, "eval_steps": args.steps, "batch_size": 16, "output_dir": "runs/bench_memory"},
            "resources": {"num_workers": 1, "cpus_per_worker": 2},
        })
        metrics = train_experiment(config, f"memory-{name}", Path("runs/bench_memory"))
        result[name] = {k: metrics[k] for k in ("peak_memory_mb", "trainable_percent", "steady_samples_per_second")}
    result["lora_over_full_peak_memory"] = result["lora-r16"]["peak_memory_mb"] / result["full"]["peak_memory_mb"]
    table = "\n".join(["| run | peak MB | trainable % |", "| --- | ---: | ---: |"] + [
        f"| {name} | {result[name]['peak_memory_mb']:.0f} | {result[name]['trainable_percent']:.2f} |" for name in ("full", "lora-r16")
    ] + ["", f"LoRA r16 / full peak memory: {result['lora_over_full_peak_memory']:.2f}"])
    record("Memory: LoRA r16 vs full fine-tuning (minilm-l6, NCBI-disease, batch 16, peak process RSS)", result, table)


if __name__ == "__main__":
    main()
