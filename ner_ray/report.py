"""The comparison table of seed 000: `exp | f1 | precision | recall | sec | peak MB | trainable %`,
mean ± std over the repeats (seeds) of each experiment, as ASCII.

Input is the metrics dicts that `ner-ray train` writes (one per experiment and seed); `ner-ray
tune` renders its trials through the same function.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable

COLUMNS = (("f1", "f1", 4), ("precision", "precision", 4), ("recall", "recall", 4),
           ("sec", "train_seconds", 1), ("peak MB", "peak_memory_mb", 0), ("trainable %", "trainable_percent", 2))


def _cell(values: list[float], digits: int) -> str:
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def comparison_rows(runs: Iterable[dict]) -> list[list[str]]:
    """One row per experiment (first-seen order): the name, then mean ± std of each column over its runs."""
    grouped: dict[str, list[dict]] = defaultdict(list)
    for run in runs:
        grouped[run["experiment"]].append(run)
    rows = []
    for name, group in grouped.items():
        label = f"{name} (n={len(group)})" if len(group) > 1 else name
        rows.append([label] + [_cell([float(r[key]) for r in group], digits) for _, key, digits in COLUMNS])
    return rows


def comparison_table(runs: Iterable[dict]) -> str:
    """The ASCII table: a header, a rule, one row per experiment."""
    rows = [["exp"] + [title for title, _, _ in COLUMNS]] + comparison_rows(runs)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [" | ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))) for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)
