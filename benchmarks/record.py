"""Appending a measured figure to BENCHMARKS.md: the command, date, machine and the JSON it printed."""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def machine() -> str:
    """CPU model, core count and memory of this machine, in one line."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, no GPU"


def record(title: str, result: dict, table: str = "") -> None:
    """Print `result` as JSON and append a section to BENCHMARKS.md with the command that produced it."""
    print(json.dumps(result, indent=2, default=float))
    command = "python " + shlex.join([os.path.relpath(sys.argv[0], BENCHMARKS.parent), *sys.argv[1:]])
    lines = [f"\n### {title}\n", f"- command: `{command}`",
             f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC", f"- machine: {machine()}\n"]
    if table:
        lines += [table, ""]
    lines += ["<details><summary>raw JSON</summary>\n", "```json", json.dumps(result, indent=2, default=float), "```", "</details>\n"]
    with BENCHMARKS.open("a") as f:
        f.write("\n".join(lines))
