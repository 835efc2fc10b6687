"""The top entries of a py-spy profile of a training process: where its wall time goes, inclusive and self,
and which callers the hottest leaf has (e.g. which dropouts the dropout time belongs to).

Profile a running Ray Train worker (the first `ray::RayTrainWorker` process; a `ner-ray train` run in steady
training) for 60 s, or any process by pid, or a command from its start:

    python benchmarks/pyspy_top.py --ray-train-worker --seconds 60 --title "compare suite, lora-r8"
    python benchmarks/pyspy_top.py --pid 1234 --seconds 60
    python benchmarks/pyspy_top.py --title "plain script" -- python benchmarks/plain_hf.py --padding dynamic --steps 120

py-spy must be installed (`pip install py-spy`); it samples the process from outside, at --rate per second.
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import record  # noqa: E402


def frame_name(frame: str) -> str:
    """`function (path/file.py:line)` -> `function file.py`: one entry per function, whatever the line."""
    if " (" not in frame:
        return frame
    function, where = frame.split(" (", 1)
    return f"{function} {where.split(':')[0].rsplit('/', 1)[-1]}"


def summarise(raw: Path, top: int) -> dict:
    """Inclusive and self shares of the samples (%), and the callers of the hottest self entry."""
    inclusive: collections.Counter = collections.Counter()
    own: collections.Counter = collections.Counter()
    stacks = []
    total = 0
    for line in raw.read_text().splitlines():
        stack, count = line.rsplit(" ", 1)
        frames, samples = [frame_name(f) for f in stack.split(";")], int(count)
        total += samples
        inclusive.update({name: samples for name in set(frames)})
        own[frames[-1]] += samples
        stacks.append((frames, samples))
    hottest = own.most_common(1)[0][0] if own else None
    callers: collections.Counter = collections.Counter()
    for frames, samples in stacks:
        if frames[-1] == hottest:
            outside = [f for f in frames[:-1] if not f.startswith(("Module._call_impl", "Module._wrapped_call_impl", "Dropout."))]
            callers[" <- ".join(reversed(outside[-2:]))] += samples

    def shares(counter: collections.Counter) -> dict[str, float]:
        return {name: round(100 * n / total, 1) for name, n in counter.most_common(top)}

    return {"samples": total, "inclusive_percent": shares(inclusive), "self_percent": shares(own),
            "hottest": hottest, "hottest_callers_percent": shares(callers)}


def ray_train_worker() -> int:
    import psutil

    for process in psutil.process_iter(["pid", "cmdline"]):
        if any("RayTrainWorker" in part for part in process.info["cmdline"] or []):
            return process.info["pid"]
    raise SystemExit("no ray::RayTrainWorker process is running (start a `ner-ray train` run first)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--pid", type=int)
    target.add_argument("--ray-train-worker", action="store_true", help="the first running ray::RayTrainWorker")
    parser.add_argument("--seconds", type=int, default=60, help="how long to sample a running process")
    parser.add_argument("--rate", type=int, default=50, help="samples per second")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--title", default="", help="what was profiled, for BENCHMARKS.md")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND: profile it from start to end")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    with tempfile.TemporaryDirectory() as folder:
        raw = Path(folder) / "profile.txt"
        spy = ["py-spy", "record", "--rate", str(args.rate), "--format", "raw", "-o", str(raw), "--nonblocking"]
        if command:
            subprocess.run([*spy, "--", *command], check=True)
        else:
            pid = args.pid or ray_train_worker()
            subprocess.run([*spy, "--pid", str(pid), "--duration", str(args.seconds)], check=True)
        result = summarise(raw, args.top)
    below_the_loop = {name: share for name, share in result["inclusive_percent"].items() if share < 90}  # not the wrappers
    table = "\n".join(["| where the time goes (inclusive) | % of samples |", "| --- | ---: |"]
                      + [f"| `{name}` | {share} |" for name, share in below_the_loop.items()]
                      + ["", "| leaf (self) | % of samples |", "| --- | ---: |"]
                      + [f"| `{name}` | {share} |" for name, share in result["self_percent"].items()]
                      + ["", f"callers of the hottest leaf (`{result['hottest']}`), % of all samples:", ""]
                      + [f"- `{name}`: {share}" for name, share in result["hottest_callers_percent"].items()])
    record(f"py-spy profile: {args.title or ' '.join(command) or 'a Ray Train worker'} ({result['samples']} samples)", result, table)


if __name__ == "__main__":
    main()
