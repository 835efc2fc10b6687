"""A finished (or interrupted) study's report, from its results.json alone: the seed-000 ASCII table,
a Markdown report and the F1-vs-trainable-% plot. `ner-ray report OUTPUT_DIR` renders it again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ner_ray.artifacts import PLOT, REPORT, RESULTS
from ner_ray.comparison import TUNE_COLUMNS, comparison_table, new_plot, save_plot
from ner_ray.data.textio import write_text_atomic
from ner_ray.errors import ConfigError


def read_results(output_dir: str | Path) -> dict[str, Any]:
    """The study record `ner_ray.tune` writes: {"study", "trials": [...], ...}."""
    path = Path(output_dir) / RESULTS
    if not path.is_file():
        raise ConfigError(f"{path}: no such file; `python -m ner_ray.tune STUDY.yaml` writes it in train.output_dir")
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not a study record ({err}); `python -m ner_ray.tune STUDY.yaml` writes it") from None
    missing = [key for key in ("study", "metric", "mode", "trials") if not isinstance(results, dict) or key not in results]
    if missing:
        raise ConfigError(f"{path}: not a study record (no {', '.join(missing)}); `python -m ner_ray.tune STUDY.yaml` writes it")
    return results


def trial_label(trial: dict[str, Any]) -> str:
    """Row label: the experiment and the trial's sampled params without the seed (repeats share a row)."""
    shown = [f"{key.rsplit('.', 1)[-1]}={_short(value)}" for key, value in sorted(trial["params"].items())
             if key != "train.seed" and not key.startswith("__")]
    label = " ".join([trial["experiment"], *shown])
    if trial["status"] == "early_stopped":
        label += f" [stopped@{trial['evaluations']}]"
    elif trial["status"] != "completed":
        label += f" [{trial['status']}]"
    return label


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def study_table(trials: list[dict[str, Any]]) -> str:
    """The seed-000 table over a study's trials, best dev F1 first; test scores of completed trials ('-' for
    trials ASHA stopped, that failed, or of a study without a test split)."""
    ordered = sorted(trials, key=lambda t: t["dev_f1"] if t.get("dev_f1") is not None else float("-inf"), reverse=True)
    rows = [{**t, "experiment": trial_label(t)} for t in ordered]
    return comparison_table(rows, TUNE_COLUMNS)


def plot_f1_vs_trainable(trials: list[dict[str, Any]], path: str | Path) -> Path | None:
    """Scatter of best dev F1 against trainable-parameter % (log x), one point per trial; None if no trial
    reported both."""
    points = [(t["trainable_percent"], t["dev_f1"], t["status"]) for t in trials
              if t.get("trainable_percent") and t.get("dev_f1") is not None]
    if not points:
        return None
    figure, axes = new_plot()
    for status, marker in (("completed", "o"), ("early_stopped", "x")):
        chosen = [(x, y) for x, y, s in points if s == status]
        if chosen:
            axes.scatter(*zip(*chosen), marker=marker, label=status.replace("_", " "))
    axes.set_ylabel("best dev F1")
    axes.legend()
    return save_plot(figure, path)


def per_type_markdown(per_type: dict[str, dict[str, float]]) -> str:
    """| type | precision | recall | f1 | tp | fp | fn | for one trial's scored split."""
    lines = ["| type | precision | recall | f1 | tp | fp | fn |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, s in sorted(per_type.items()):
        lines.append(f"| {name} | {s['precision']:.4f} | {s['recall']:.4f} | {s['f1']:.4f} | "
                     f"{s.get('tp', '')} | {s.get('fp', '')} | {s.get('fn', '')} |")
    return "\n".join(lines)


def study_markdown(results: dict[str, Any], plot: str | None) -> str:
    """The Markdown report: the table, the plot, the best trial (config, per-type scores), every trial's end."""
    trials = results["trials"]
    out = [f"# Study {results['study']}", "",
           (f"{len(trials)} trials; metric {results['metric']} ({results['mode']}); "
            f"MLflow: {(results.get('mlflow') or {}).get('tracking_uri', 'off')}"), "",
           "```", study_table(trials), "```", ""]
    if plot:
        out += [f"![best dev F1 vs trainable parameters]({plot})", ""]
    best = results.get("best")
    if best:
        out += [f"## Best trial: {best['trial_id']} ({best['experiment']})", "",
                f"dev F1 {best['dev_f1']:.4f}" + (f", test F1 {best['test_f1']:.4f}" if best.get("test_f1") is not None
                                                 else ", no test split scored"),
                f"; model: `{best.get('model_path') or '-'}`", "",
                "```json", json.dumps(best["params"], indent=2, sort_keys=True), "```", ""]
        if best.get("test_per_type"):
            out += ["Test scores by type:", "", per_type_markdown(best["test_per_type"]), ""]
    out += ["## Trials", "", "| trial | experiment | status | evaluations | epochs | best dev f1 | seconds | stop reason |",
            "| --- | --- | --- | ---: | ---: | ---: | ---: | --- |"]
    for t in trials:
        dev = "-" if t.get("dev_f1") is None else f"{t['dev_f1']:.4f}"
        out.append(f"| {t['trial_id']} | {t['experiment']} | {t['status']} | {t['evaluations']} | {t.get('epochs') or 0:.2f} | "
                   f"{dev} | {t.get('seconds') or 0:.0f} | {t['stop_reason']} |")
    return "\n".join(out) + "\n"


def write_report(output_dir: str | Path) -> tuple[str, Path]:
    """Render results.json into report.md and the plot beside it; returns (ASCII table, report path)."""
    output_dir = Path(output_dir)
    results = read_results(output_dir)
    plot = plot_f1_vs_trainable(results["trials"], output_dir / PLOT)
    report = write_text_atomic(output_dir / REPORT, study_markdown(results, plot.name if plot else None))
    return study_table(results["trials"]), report
