"""The comparison table of seed 000, with every score named by its split:
`exp | test f1 | test precision | test recall | sec | peak MB | trainable %`, mean ± std over the repeats
(seeds) of each experiment, as ASCII.

Input is the metrics dicts that `ner-ray train` writes (one per experiment and seed); `ner-ray
tune` renders its trials through the same function.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable

COLUMNS = (("test f1", "test_f1", 4), ("test precision", "test_precision", 4), ("test recall", "test_recall", 4),
           ("sec", "train_seconds", 1), ("peak MB", "peak_memory_mb", 0), ("trainable %", "trainable_percent", 2))


# A Tune study shows each trial's best dev F1 too, and its wall seconds (a stopped trial has no train_seconds).
TUNE_COLUMNS = (("dev f1", "dev_f1", 4),
                *(("sec", "seconds", 1) if key == "train_seconds" else (title, key, digits) for title, key, digits in COLUMNS))


def _cell(values: list[float | None], digits: int) -> str:
    """mean ± std of the known values; '-' when none is known (a trial stopped before its test score)."""
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def comparison_rows(runs: Iterable[dict], columns=COLUMNS) -> list[list[str]]:
    """One row per experiment (first-seen order): the name, then mean ± std of each column over its runs."""
    grouped: dict[str, list[dict]] = defaultdict(list)
    for run in runs:
        grouped[run["experiment"]].append(run)
    rows = []
    for name, group in grouped.items():
        label = f"{name} (n={len(group)})" if len(group) > 1 else name
        rows.append([label] + [_cell([_number(r.get(key)) for r in group], digits) for _, key, digits in columns])
    return rows


def _number(value) -> float | None:
    return None if value is None else float(value)


def comparison_table(runs: Iterable[dict], columns=COLUMNS) -> str:
    """The ASCII table: a header, a rule, one row per experiment (`columns`: (title, metric key, digits))."""
    rows = [["exp"] + [title for title, _, _ in columns]] + comparison_rows(runs, columns)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [" | ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))) for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)
