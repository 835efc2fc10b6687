"""The comparison table of seed 000, with every score named by its split:
`exp | test f1 | test precision | test recall | sec | peak MB | trainable %`, mean ± std over the repeats
(seeds) of each experiment, as ASCII.

Input is the metrics dicts that `ner-ray train` writes (one per experiment and seed); `ner-ray
tune` renders its trials through the same function. `ner-ray train` also writes the table as report.md, with
every run and the test-F1-vs-trainable-% plot (`write_comparison_report`).
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from ner_ray.artifacts import METRICS, MODEL_DIR, MODEL_META, PLOT, REPORT
from ner_ray.data.textio import write_text_atomic

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


def report_heading(models: Iterable[tuple[str, str]]) -> str:
    """`Seed-000 comparison: model on corpus[, ...]`, the report's title."""
    return "Seed-000 comparison: " + ", ".join(dict.fromkeys(f"{model} on {corpus}" for model, corpus in models))


def read_train_runs(output_dir: str | Path) -> tuple[str, list[dict]]:
    """The report's title and the metrics of every `ner-ray train` run in OUTPUT_DIR (<experiment>/metrics.json and
    <experiment>/seed<k>/metrics.json), in the order they finished (no runs: an empty list)."""
    paths = sorted([*Path(output_dir).glob(f"*/{METRICS}"), *Path(output_dir).glob(f"*/seed*/{METRICS}")],
                   key=lambda path: path.stat().st_mtime)
    runs, models = [], []
    for path in paths:
        runs.append(json.loads(path.read_text(encoding="utf-8")))
        meta = path.parent / MODEL_DIR / MODEL_META
        if meta.is_file():
            config = json.loads(meta.read_text(encoding="utf-8")).get("config", {})
            models.append((config.get("model", {}).get("name", "?"), config.get("data", {}).get("corpus", "?")))
    return report_heading(models), runs


def write_comparison_report(output_dir: str | Path, heading: str, runs: list[dict]) -> Path:
    """OUTPUT_DIR/report.md (the table, the plot, every run) and the plot beside it; returns the report's path."""
    output_dir = Path(output_dir)
    plot = plot_test_f1_vs_trainable(runs, output_dir / PLOT)
    return write_text_atomic(output_dir / REPORT, comparison_markdown(heading, runs, plot.name if plot else None))


def comparison_markdown(heading: str, runs: list[dict], plot: str | None) -> str:
    """The report: the seed-000 table (mean ± std over seeds), the plot, then one line per run."""
    precisions = sorted({str(r.get("train_precision")) for r in runs})
    out = [f"# {heading}", "", f"{len(runs)} runs; training precision {', '.join(precisions)}; mean ± std over seeds.", "",
           "```", comparison_table(runs), "```", ""]
    if plot:
        out += [f"![test F1 vs trainable parameters]({plot})", ""]
    out += ["## Runs", "",
            "| experiment | seed | dev f1 | test f1 | test precision | test recall | train sec | peak MB | trainable % | precision |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in runs:
        cells = [_cell([_number(r.get(key))], digits) for key, digits in
                 (("dev_f1", 4), ("test_f1", 4), ("test_precision", 4), ("test_recall", 4), ("train_seconds", 1),
                  ("peak_memory_mb", 0), ("trainable_percent", 2))]
        out.append(f"| {r['experiment']} | {r.get('seed', '-')} | {' | '.join(cells)} | {r.get('train_precision', '-')} |")
    return "\n".join(out) + "\n"


def plot_test_f1_vs_trainable(runs: list[dict], path: str | Path) -> Path | None:
    """Mean test F1 (± std over seeds) against trainable-parameter % (log x), one labelled point per experiment;
    None if no run reported both."""
    grouped: dict[str, list[dict]] = defaultdict(list)
    for run in runs:
        if run.get("trainable_percent") and run.get("test_f1") is not None:
            grouped[run["experiment"]].append(run)
    if not grouped:
        return None
    figure, axes = new_plot()
    for name, group in grouped.items():
        x = statistics.fmean(float(r["trainable_percent"]) for r in group)
        scores = [float(r["test_f1"]) for r in group]
        spread = statistics.stdev(scores) if len(scores) > 1 else 0.0
        axes.errorbar([x], [statistics.fmean(scores)], yerr=[spread], fmt="o", capsize=3)
        axes.annotate(name, (x, statistics.fmean(scores)), textcoords="offset points", xytext=(4, 4), fontsize=8)
    axes.set_ylabel("test F1 (mean ± std over seeds)")
    return save_plot(figure, path)


def new_plot():
    """A figure for an F1-vs-trainable-% plot: log x axis, labelled, with a light grid (Agg: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4), dpi=100)
    axes.set_xscale("log")
    axes.set_xlabel("trainable parameters (%)")
    axes.grid(alpha=0.3)
    return figure, axes


def save_plot(figure, path: str | Path) -> Path:
    """Save the figure whole or not at all, and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    figure.tight_layout()
    figure.savefig(path.with_suffix(".tmp.png"))
    plt.close(figure)
    path.with_suffix(".tmp.png").replace(path)
    return path
