"""The seed-000 comparison table: exact text for fixed metric dicts (one run, repeats, several experiments);
every score is named by its split."""

from __future__ import annotations

from ner_ray.comparison import comparison_rows, comparison_table


def run(experiment: str, f1: float, precision: float, recall: float, sec: float, mb: float, pct: float, **extra) -> dict:
    return {"experiment": experiment, "test_f1": f1, "test_precision": precision, "test_recall": recall, "train_seconds": sec,
            "peak_memory_mb": mb, "trainable_percent": pct, **extra}


def test_one_run_per_experiment_has_no_std():
    runs = [run("lora", 0.5, 0.6, 0.4, 12.34, 700.4, 1.234, test={"per_type": {"Chemical": {}}}, seed=42)]
    assert comparison_table(runs).splitlines() == [
        "exp  | test f1 | test precision | test recall |  sec | peak MB | trainable %",
        "-----+---------+----------------+-------------+------+---------+------------",
        "lora |  0.5000 |         0.6000 |      0.4000 | 12.3 |     700 |        1.23",
    ]


def test_repeats_show_mean_and_sample_std_in_first_seen_order():
    runs = [
        run("lora", 0.5, 0.6, 0.4, 12.34, 700.4, 1.234),
        run("full", 0.7, 0.75, 0.65, 30, 900, 100),
        run("full", 0.8, 0.85, 0.75, 32, 910, 100),
    ]
    assert comparison_table(runs).splitlines() == [
        "exp        |         test f1 |  test precision |     test recall |        sec | peak MB |   trainable %",
        "-----------+-----------------+-----------------+-----------------+------------+---------+--------------",
        "lora       |          0.5000 |          0.6000 |          0.4000 |       12.3 |     700 |          1.23",
        "full (n=2) | 0.7500 ± 0.0707 | 0.8000 ± 0.0707 | 0.7000 ± 0.0707 | 31.0 ± 1.4 | 905 ± 7 | 100.00 ± 0.00",
    ]


def test_three_seeds_identical_values_have_zero_std():
    runs = [run("crf", 0.25, 0.25, 0.25, 1.0, 100, 50) for _ in range(3)]
    assert comparison_rows(runs) == [
        ["crf (n=3)", "0.2500 ± 0.0000", "0.2500 ± 0.0000", "0.2500 ± 0.0000", "1.0 ± 0.0", "100 ± 0", "50.00 ± 0.00"]]


def test_no_runs_is_just_the_header():
    assert comparison_table([]).splitlines() == [
        "exp | test f1 | test precision | test recall | sec | peak MB | trainable %",
        "----+---------+----------------+-------------+-----+---------+------------",
    ]
