"""Per-thread counters of a process and everything it started (Linux /proc), read twice some seconds apart: CPU
share, involuntary context switches (preemptions), voluntary ones (wake-ups after a sleep) and minor page faults,
per second. ray_overhead.py's --per-thread uses it on an arm's process tree in the steady state of training: the
busy threads are the training thread and its OpenMP workers; Ray's processes show up as the wake-ups of the rest.

    python benchmarks/thread_stats.py PID [--seconds 15]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
BUSY = 0.5  # a thread that used at least half a core over the window is reported on its own row


@dataclass(frozen=True)
class Counters:
    process: str  # the process's command line, shortened (Ray sets it to the actor's name: ray::RayTrainWorker...)
    thread: str  # the thread's name
    cpu_ticks: int
    minor_faults: int
    voluntary: int
    involuntary: int


def descendants(root: int) -> list[int]:
    """`root` and every live process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # the process ended while we looked
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def read(pids: list[int]) -> dict[tuple[int, int], Counters]:
    """{(pid, tid): counters} of every thread of `pids` (threads that end while read are left out)."""
    counters = {}
    for pid in pids:
        try:
            process = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()[:60]
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                head, rest = (task / "stat").read_text().rsplit(")", 1)
                fields = rest.split()  # fields[0] is stat's field 3 (state)
                status = dict(line.split(":", 1) for line in (task / "status").read_text().splitlines() if ":" in line)
            except (OSError, ValueError):
                continue
            counters[pid, int(task.name)] = Counters(
                process, head.split("(", 1)[1], int(fields[11]) + int(fields[12]), int(fields[7]),
                int(status["voluntary_ctxt_switches"]), int(status["nonvoluntary_ctxt_switches"]))
    return counters


def sample(root: int, seconds: float) -> dict:
    """Rates over `seconds` for the busy threads of `root`'s tree, one row each, and the sum over all its threads."""
    before = read(descendants(root))
    time.sleep(seconds)
    after = read(descendants(root))
    rows, total = [], {"threads": 0, "voluntary_per_s": 0.0, "involuntary_per_s": 0.0, "minor_faults_per_s": 0.0}
    for key in sorted(before.keys() & after.keys()):
        a, b = before[key], after[key]
        rate = {"cpu": (b.cpu_ticks - a.cpu_ticks) / TICKS / seconds, "voluntary_per_s": (b.voluntary - a.voluntary) / seconds,
                "involuntary_per_s": (b.involuntary - a.involuntary) / seconds,
                "minor_faults_per_s": (b.minor_faults - a.minor_faults) / seconds}
        total["threads"] += 1
        for name in ("voluntary_per_s", "involuntary_per_s", "minor_faults_per_s"):
            total[name] += rate[name]
        if rate["cpu"] >= BUSY:
            rows.append({"pid": key[0], "tid": key[1], "process": b.process, "thread": b.thread, **rate})
    return {"seconds": seconds, "processes": len(descendants(root)), "busy_threads": rows, "all_threads": total}


def table(label: str, sampled: dict) -> list[str]:
    """Markdown rows: one per busy thread, then the whole tree."""
    rows = [f"| {label} | {r['process'][:32]} / {r['thread']} | {r['cpu']:.2f} | {r['involuntary_per_s']:.0f} | "
            f"{r['voluntary_per_s']:.0f} | {r['minor_faults_per_s']:.0f} |" for r in sampled["busy_threads"]]
    t = sampled["all_threads"]
    rows.append(f"| {label} | all {t['threads']} threads of {sampled['processes']} processes | | {t['involuntary_per_s']:.0f} | "
                f"{t['voluntary_per_s']:.0f} | {t['minor_faults_per_s']:.0f} |")
    return rows


HEADER = ["| arm | process / thread | CPU (cores) | involuntary switches/s | voluntary switches/s | minor faults/s |",
          "| --- | --- | ---: | ---: | ---: | ---: |"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("pid", type=int)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    sampled = sample(args.pid, args.seconds)
    print(json.dumps(sampled, indent=2))
    print("\n".join([*HEADER, *table(str(args.pid), sampled)]))


if __name__ == "__main__":
    main()
