"""Throughput, one run side by side on the same model (minilm-l6), data (NCBI-disease train BIO
sentences, same order and seed, so the length-grouped samplers draw the same batches), batch size, machine
and precision (the one `train.precision: auto` picks here: bf16 where the CPU/GPU multiplies it natively,
else fp32; every arm uses it):
  1. the seeds' plain HF Trainer script, every sentence padded to 256 tokens;
  2. the same script with dynamic padding and length-grouped batches;
  3. script 2 run unchanged as a Ray task on the local Ray that ner_ray starts (2 CPUs): what running
     inside a Ray worker process costs by itself (Ray's daemons and actors beside it, worker niceness);
  4. ner_ray's path (`ner-ray train`: TorchTrainer, 1 worker) with its defaults.
The four arms run in turn, round after round (A B C D A B C D ...), and each figure is the median of its
rounds. Steady-state sentences/s exclude the first 5 steps and evaluation; Ray's start-up is reported apart.
The padded arm runs fewer steps (every step has the same shape, so its rate settles at once).

    python benchmarks/throughput.py --steps 120 --padded-steps 30 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from plain_hf import run as run_plain  # noqa: E402
from record import record  # noqa: E402

from ner_ray.config import StudyConfig  # noqa: E402
from ner_ray.inference.predict import resolve_precision  # noqa: E402
from ner_ray.train.run import train_experiment  # noqa: E402


def run_ours(steps: int, batch_size: int, precision: str) -> dict:
    """ner_ray's path, its run (checkpoints, model, Ray's storage: ~90 MB a run) in a temporary folder removed after."""
    with tempfile.TemporaryDirectory(prefix="bench_throughput-") as output_dir:
        config = StudyConfig.model_validate({
            "data": {"corpus": "ncbi_disease", "format": "bio", "test_split": None, "max_length": 256},
            "model": {"name": "minilm-l6", "lora": None},
            "train": {"max_steps": steps, "batch_size": batch_size, "lr": 1e-4, "eval_steps": steps, "output_dir": output_dir,
                      "precision": precision},
            "resources": {"num_workers": 1, "cpus_per_worker": 2},
        })
        start = time.perf_counter()
        metrics = train_experiment(config, "throughput", Path(output_dir))
        wall = time.perf_counter() - start
    return {"steady_sentences_per_second": metrics["steady_samples_per_second"], "wall_seconds": wall,
            "train_seconds": metrics["train_seconds"], "startup_seconds": wall - metrics["train_seconds"], "steps": steps,
            "precision": metrics["train_precision"]}


def train_without_ray(config: StudyConfig, output_dir: str) -> tuple[float, int]:
    """ner_ray's training step without Ray: the study's data, family, model and FamilyTrainer in this thread, timed
    by the ThroughputCallback; no evaluation, no checkpoints. (steady samples/s, training windows)"""
    from transformers import set_seed

    from ner_ray.train.accounting import ThroughputMeter
    from ner_ray.train.callbacks import ThroughputCallback
    from ner_ray.train.data import prepare_data
    from ner_ray.train.trainer import FamilyTrainer, training_arguments

    set_seed(config.train.seed)
    data = prepare_data(config)
    args = training_arguments(config, output_dir, max(1, config.train.max_steps // 4), None)
    args.load_best_model_at_end, args.save_strategy, args.eval_strategy = False, "no", "no"
    meter = ThroughputMeter(config.train.batch_size)
    trainer = FamilyTrainer(model=data.family.build(), args=args, family=data.family, train_dataset=[e.features for e in data.train],
                            data_collator=data.family.collate, callbacks=[ThroughputCallback(meter)])
    trainer.train()
    return meter.samples_per_second, len(data.train)


def as_ray_task(fn, *args, **kwargs):
    """`fn(*args, **kwargs)` as a Ray task holding 2 CPUs, on ner_ray's local Ray (started when none runs)."""
    import ray

    from ner_ray.train.run import ensure_ray

    # Ray's worker processes inherit the driver's environment: they find this folder's modules on this path.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parent), os.environ.get("PYTHONPATH")]))
    ensure_ray()
    return ray.get(ray.remote(num_cpus=2)(fn).remote(*args, **kwargs))


def run_plain_in_ray(bio: Path, steps: int, batch_size: int, bf16: bool) -> dict:
    """Arm 3: the plain dynamic-padding script as a Ray task holding 2 CPUs, on ner_ray's local Ray."""
    return as_ray_task(run_plain, bio, "dynamic", bf16=bf16, steps=steps, batch_size=batch_size, group_by_length=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=120, help="optimizer steps of the dynamic-padding arms")
    parser.add_argument("--padded-steps", type=int, default=30, help="optimizer steps of the padded-to-256 arm")
    parser.add_argument("--rounds", type=int, default=3,
                        help="the four arms run in turn this many times; each figure is the median")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    args = parser.parse_args()
    os.environ["NER_RAY_DATA"] = args.data_dir  # before Ray starts: its worker processes inherit the environment
    bio = Path(args.data_dir) / "ncbi_disease/conll/train.tsv"
    precision = resolve_precision("auto")
    if precision not in ("bf16", "fp32"):
        raise SystemExit(f"this benchmark runs on CPU in bf16 or fp32, not {precision}")
    bf16 = precision == "bf16"
    arms = {
        "padded": lambda: run_plain(bio, "max_length", bf16=bf16, steps=args.padded_steps, batch_size=args.batch_size),
        "dynamic": lambda: run_plain(bio, "dynamic", bf16=bf16, steps=args.steps, batch_size=args.batch_size, group_by_length=True),
        "in_ray": lambda: run_plain_in_ray(bio, args.steps, args.batch_size, bf16),
        "ours": lambda: run_ours(args.steps, args.batch_size, precision),
    }
    # Interleaved rounds: a neighbour's load on a shared VM then slows every arm alike, not one arm.
    runs: dict[str, list[dict]] = {name: [] for name in arms}
    for _ in range(args.rounds):
        for name, arm in arms.items():
            runs[name].append(arm())
    rate = {name: statistics.median(r["steady_sentences_per_second"] for r in rounds) for name, rounds in runs.items()}
    result = {
        "precision": precision, "rounds": args.rounds, "plain_padded_256": runs["padded"],
        "plain_dynamic_grouped": runs["dynamic"], "plain_dynamic_as_ray_task": runs["in_ray"], "ner_ray_torchtrainer": runs["ours"],
        "median_steady_sentences_per_second": rate,
        "speedup_vs_padded": rate["ours"] / rate["padded"],
        "ray_steady_overhead_vs_dynamic": 1 - rate["ours"] / rate["dynamic"],
        "ray_worker_environment_cost": 1 - rate["in_ray"] / rate["dynamic"],
        "ner_ray_path_cost_inside_ray": 1 - rate["ours"] / rate["in_ray"],
    }

    def each(name: str) -> str:
        return ", ".join(f"{r['steady_sentences_per_second']:.1f}" for r in runs[name])

    startup = statistics.median(r["startup_seconds"] for r in runs["ours"])
    table = "\n".join([
        "| run | steady sentences/s (median) | each round |", "| --- | ---: | --- |",
        f"| plain HF, padded to 256 (the seeds' script) | {rate['padded']:.1f} | {each('padded')} |",
        f"| plain HF, dynamic padding, grouped | {rate['dynamic']:.1f} | {each('dynamic')} |",
        f"| the same script as a Ray task (2 CPUs) on ner_ray's local Ray | {rate['in_ray']:.1f} | {each('in_ray')} |",
        f"| ner_ray TorchTrainer (1 worker; start-up {startup:.0f} s apart) | {rate['ours']:.1f} | {each('ours')} |",
        "", f"speed-up vs padded: {result['speedup_vs_padded']:.2f}x; Ray steady-state overhead vs dynamic: "
        f"{100 * result['ray_steady_overhead_vs_dynamic']:.1f}% (running in a Ray worker process: "
        f"{100 * result['ray_worker_environment_cost']:.1f}%; ner_ray's path inside Ray: {100 * result['ner_ray_path_cost_inside_ray']:.1f}%)",
    ])
    record(f"Throughput: ner_ray vs a plain HF Trainer script (NCBI-disease train sentences, minilm-l6, {precision}, "
           f"{args.rounds} interleaved rounds)", result, table)


if __name__ == "__main__":
    main()
