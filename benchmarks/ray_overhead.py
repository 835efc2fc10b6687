"""Where ner_ray's Ray overhead (issue 14 item 4) comes from: the same training steps (minilm-l6, NCBI-disease train
BIO sentences, batch 16, length-grouped dynamic padding, the precision `train.precision: auto` picks) run six ways,
each arm in a fresh Python process (an OpenMP thread pool, once made, lives as long as its process), arms interleaved
round after round:

  plain            the plain HF Trainer script (benchmarks/plain_hf.py), on the main thread;
  ours_main        ner_ray's FamilyTrainer with the family's collate, loss and model, no Ray, on the main thread;
  ours_thread      the same on a new Python thread (Ray Train runs the training function on a thread);
  ours_thread_pool the same on a new thread after one parallel op on the main thread, so that the process holds
                   two libgomp pools (the main thread's, idle, and the training thread's);
  ours_ray_task    ours_main as a Ray task (2 CPUs) on ner_ray's local Ray;
  ours_ray_task_thread  the same Ray task, training on a new thread of the task's worker (as Ray Train's worker does);
  ours_ray_train   `ner-ray train`'s path: TorchTrainer, 1 worker (throughput.py's arm);
  ours_ray_train_unisolated  the same without ner_ray/train/cpu_isolation.py's measures (Ray's processes under
                   SCHED_OTHER, the workers without MALLOC_ARENA_MAX=1, at Ray's niceness 15, Ray Train's preemption
                   watcher on), as before 2026-12-07;
  ours_ray_train_nice15  ours_ray_train with the workers at Ray's default niceness, 15 (ner_ray's is 0 since
                   2026-12-07 midday);
  ours_ray_train_preemption_watcher  ours_ray_train with Ray Train's preemption watcher on (Ray's default; a local
                   Ray of ner_ray's has it off since 2026-12-07 evening).

Steady sentences/s exclude the first 5 steps; each figure is the median of its rounds. With --per-thread S, each
arm's process tree (Ray's processes included) is also read S seconds after the arm starts, for 15 s
(thread_stats.py): preemptions, wake-ups and page faults per second of the training threads; give --steps enough
for the arm to be training then (400 steps at batch 16 run about 90 s).

    python benchmarks/ray_overhead.py --steps 120 --rounds 2
    python benchmarks/ray_overhead.py --arms plain,ours_main,ours_ray_train --steps 400 --rounds 1 --per-thread 60
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
ARMS = ("plain", "ours_main", "ours_thread", "ours_thread_pool", "ours_ray_task", "ours_ray_task_thread", "ours_ray_train",
        "ours_ray_train_unisolated", "ours_ray_train_nice15", "ours_ray_train_preemption_watcher")
BIO = "ncbi_disease/conll/train.tsv"
THREAD_WINDOW_SECONDS = 15.0


def ours_in_process(steps: int, batch_size: int, precision: str) -> float:
    """ner_ray's training step without Ray (throughput.train_without_ray) on the NCBI BIO sentences."""
    from throughput import train_without_ray

    from ner_ray.config import StudyConfig

    config = StudyConfig.model_validate({
        "data": {"corpus": "ncbi_disease", "format": "bio", "test_split": None, "max_length": 256},
        "model": {"name": "minilm-l6", "lora": None},
        "train": {"max_steps": steps, "batch_size": batch_size, "lr": 1e-4, "precision": precision},
    })
    return train_without_ray(config, "/tmp/ray_overhead_hf")[0]


def on_thread(fn):
    result: dict = {}
    thread = threading.Thread(target=lambda: result.setdefault("value", fn()))
    thread.start()
    thread.join()
    return result["value"]


def run_arm(arm: str, steps: int, batch_size: int, data_dir: str) -> float:
    import torch
    from plain_hf import run as run_plain
    from throughput import as_ray_task, run_ours

    from ner_ray.inference.predict import resolve_precision

    precision = resolve_precision("auto")
    threads = min(2, os.cpu_count() or 1)

    def ours() -> float:
        torch.set_num_threads(threads)
        return ours_in_process(steps, batch_size, precision)

    if arm == "plain":
        torch.set_num_threads(threads)
        return run_plain(Path(data_dir) / BIO, "dynamic", bf16=precision == "bf16", steps=steps, batch_size=batch_size,
                         group_by_length=True)["steady_sentences_per_second"]
    if arm == "ours_main":
        return ours()
    if arm == "ours_thread":
        return on_thread(ours)
    if arm == "ours_thread_pool":
        torch.set_num_threads(threads)
        (torch.randn(1024, 1024) @ torch.randn(1024, 1024)).sum()  # a parallel region: the main thread's libgomp pool
        return on_thread(ours)
    if arm == "ours_ray_task":
        return as_ray_task(ours)
    if arm == "ours_ray_task_thread":
        return as_ray_task(on_thread, ours)
    if arm == "ours_ray_train":
        return run_ours(steps, batch_size, precision)["steady_sentences_per_second"]
    if arm == "ours_ray_train_unisolated":
        import contextlib

        from ner_ray.train import cpu_isolation

        cpu_isolation.batch_scheduled = lambda *_: contextlib.nullcontext({})
        os.environ[cpu_isolation.WORKER_NICENESS] = "15"
        os.environ[cpu_isolation.PREEMPTION_WATCHER] = "1"
        return run_ours(steps, batch_size, precision)["steady_sentences_per_second"]
    if arm == "ours_ray_train_nice15":
        from ner_ray.train import cpu_isolation

        os.environ[cpu_isolation.WORKER_NICENESS] = "15"
        return run_ours(steps, batch_size, precision)["steady_sentences_per_second"]
    if arm == "ours_ray_train_preemption_watcher":
        from ner_ray.train import cpu_isolation

        os.environ[cpu_isolation.PREEMPTION_WATCHER] = "1"
        return run_ours(steps, batch_size, precision)["steady_sentences_per_second"]
    raise ValueError(f"unknown arm {arm!r}; one of {', '.join(ARMS)}")


def read_threads(into: list[dict], child: subprocess.Popen) -> None:
    """The arm's threads over the window, kept when the arm was still running at its end."""
    import thread_stats

    sampled = thread_stats.sample(child.pid, THREAD_WINDOW_SECONDS)
    if child.poll() is None:
        into.append(sampled)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--arms", default=",".join(ARMS), help="comma-separated, of: " + ", ".join(ARMS))
    parser.add_argument("--arm", help=argparse.SUPPRESS)  # one arm in this process (the driver's child)
    parser.add_argument("--data-dir", default=str(HERE.parents[1] / "shared" / "data"))
    parser.add_argument("--per-thread", type=float, metavar="S", help="read each arm's threads S seconds after it starts")
    args = parser.parse_args()
    os.environ["NER_RAY_DATA"] = args.data_dir
    if args.arm:
        print("ARM_RESULT " + json.dumps(run_arm(args.arm, args.steps, args.batch_size, args.data_dir)), flush=True)
        return
    import thread_stats
    from record import record

    from ner_ray.inference.predict import resolve_precision

    arms = args.arms.split(",")
    runs: dict[str, list[float]] = {arm: [] for arm in arms}
    threads: dict[str, list[dict]] = {arm: [] for arm in arms}
    for _ in range(args.rounds):
        for arm in arms:
            child = subprocess.Popen([sys.executable, __file__, "--arm", arm, "--steps", str(args.steps), "--batch-size",
                                      str(args.batch_size), "--data-dir", args.data_dir], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
            timer = None
            if args.per_thread is not None:
                timer = threading.Timer(args.per_thread, read_threads, (threads[arm], child))
                timer.start()
            out, err = child.communicate()
            line = next((x for x in out.splitlines() if x.startswith("ARM_RESULT ")), None)
            if line is None:
                raise SystemExit(f"arm {arm} failed (exit {child.returncode}):\n{err[-3000:]}")
            if timer is not None:
                timer.cancel()
                timer.join()
                if len(threads[arm]) != len(runs[arm]) + 1:
                    raise SystemExit(f"arm {arm} ended before its threads were read: raise --steps or lower --per-thread")
            runs[arm].append(json.loads(line.split(" ", 1)[1]))
            print(arm, f"{runs[arm][-1]:.1f}", flush=True)
    median = {arm: statistics.median(values) for arm, values in runs.items()}
    base = median.get("plain")
    rows = ["| arm | steady sentences/s (median) | each round | vs plain |", "| --- | ---: | --- | ---: |"]
    for arm in arms:
        versus = f"{100 * (median[arm] / base - 1):+.1f}%" if base else ""
        rows.append(f"| {arm} | {median[arm]:.1f} | {', '.join(f'{v:.1f}' for v in runs[arm])} | {versus} |")
    if args.per_thread is not None:
        window = (f"Per thread, {THREAD_WINDOW_SECONDS:.0f} s from {args.per_thread:.0f} s after each arm started "
                  f"(busy threads: at least {thread_stats.BUSY} of a core):")
        rows += ["", window, "", *thread_stats.HEADER]
        rows += [row for arm in arms for sampled in threads[arm] for row in thread_stats.table(arm, sampled)]
    precision = resolve_precision("auto")
    record(f"Ray overhead, arm by arm: the same training steps with and without Ray, on and off the main thread "
           f"(NCBI-disease, minilm-l6, batch {args.batch_size}, {precision}, {args.rounds} interleaved rounds)",
           {"precision": precision, "steps": args.steps, "rounds": runs, "median": median,
            **({"threads": threads} if args.per_thread is not None else {})}, "\n".join(rows))


if __name__ == "__main__":
    main()
