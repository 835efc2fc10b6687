"""The search and tune blocks as Ray Tune objects, the study report, and errors raised before any trial."""

from __future__ import annotations

import json

import pytest

from ner_ray.config import StudyConfig
from ner_ray.errors import ConfigError


def study(**updates) -> StudyConfig:
    return StudyConfig().with_updates(updates)


def test_search_block_becomes_tune_domains():
    from ray.tune.search.sample import Categorical, Float, Integer

    from ner_ray.tune.space import param_space

    config = study(**{"search": {"train.lr": {"loguniform": [1e-5, 1e-3]}, "model.head.dropout": {"uniform": [0.0, 0.3]},
                                 "train.batch_size": {"randint": [4, 17]}, "model.family": {"choice": ["token_cls", "crf"]}}})
    space = param_space(config)
    assert isinstance(space["train.lr"], Float) and space["train.lr"].lower == 1e-5 and space["train.lr"].upper == 1e-3
    assert isinstance(space["model.head.dropout"], Float)
    assert isinstance(space["train.batch_size"], Integer) and space["train.batch_size"].upper == 17
    assert isinstance(space["model.family"], Categorical) and space["model.family"].categories == ["token_cls", "crf"]


def test_repeats_are_a_seed_grid_without_optuna_and_a_repeater_with_it():
    from ray.tune.search import BasicVariantGenerator, Repeater

    from ner_ray.tune.space import make_searcher, param_space, trial_updates

    plain = study(**{"train.repeats": 3, "train.seed": 7, "tune.searcher.name": "random"})
    assert param_space(plain)["train.seed"] == {"grid_search": [7, 8, 9]}
    assert isinstance(make_searcher(plain), BasicVariantGenerator)
    searched = study(**{"train.repeats": 2, "search": {"train.lr": {"loguniform": [1e-5, 1e-3]}}})
    assert "train.seed" not in param_space(searched)
    assert isinstance(make_searcher(searched), Repeater)
    assert trial_updates({"train.lr": 1e-4, "__trial_index__": 1}, searched) == {"train.lr": 1e-4, "train.seed": 43}


def test_asha_gets_one_time_unit_per_planned_evaluation_plus_the_final_report():
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    from ner_ray.tune.space import make_scheduler

    asha = make_scheduler(study(**{"train.epochs": 3, "train.evals_per_epoch": 2, "tune.scheduler.grace_period": 2, "tune.scheduler.reduction_factor": 3}))
    assert isinstance(asha, ASHAScheduler)
    assert asha._max_t == 7 and [rung for rung, _ in asha._brackets[0]._rungs] == [6, 2]  # rungs at grace 2 and 2 x 3
    # eval_steps: the count of max_steps steps (10 steps every 3: at 3, 6, 9 and the last, 10)
    fixed = make_scheduler(study(**{"train.eval_steps": 3, "train.max_steps": 10}))
    assert fixed._max_t == 5
    assert isinstance(make_scheduler(study(**{"tune.scheduler.name": "fifo"})), FIFOScheduler)


@pytest.mark.parametrize(("updates", "message"), [
    ({"train.eval_steps": 3}, "with train.eval_steps set train.max_steps too"),
    ({"search": {"train.epochs": {"choice": [2, 3]}}}, "searching train.epochs changes how many evaluations a trial makes"),
])
def test_asha_refuses_what_would_change_the_number_of_reports(updates, message):
    from ner_ray.tune.space import check_scheduler, make_scheduler

    config = study(**updates)
    with pytest.raises(ConfigError, match=message):
        check_scheduler(config)
    with pytest.raises(ConfigError, match=message):
        make_scheduler(config)
    check_scheduler(config.with_updates({"tune.scheduler.name": "fifo"}))  # FIFO lets every trial run to its end


def test_optuna_searcher_is_seeded_and_starts_from_known_points():
    from ray.tune.search.optuna import OptunaSearch

    from ner_ray.tune.space import make_searcher, param_space

    config = study(**{"search": {"train.lr": {"loguniform": [1e-5, 1e-3]}},
                      "tune.searcher": {"name": "optuna", "seed": 3, "points_to_evaluate": [{"train.lr": 2e-4}]}})

    def proposals(config):
        searcher = make_searcher(config)
        assert isinstance(searcher, OptunaSearch)
        searcher.set_search_properties("dev_f1", "max", param_space(config))
        return [searcher.suggest(f"t{i}")["train.lr"] for i in range(3)]

    first = proposals(config)
    assert first[0] == 2e-4  # the known baseline comes first
    assert proposals(config) == first  # same seed, same trials
    assert proposals(config.with_updates({"tune.searcher.seed": 4}))[1:] != first[1:]
    assert make_searcher(config)._sampler._n_startup_trials == 10  # Optuna's default
    assert make_searcher(config.with_updates({"tune.searcher.startup_trials": 3}))._sampler._n_startup_trials == 3


def test_unreachable_tracking_server_fails_before_anything_starts(tmp_path):
    from ner_ray.tune.tracking import StudyTracker

    config = study(**{"tracking.tracking_uri": "http://127.0.0.1:9", "train.output_dir": str(tmp_path)})
    with pytest.raises(ConfigError, match=r"MLflow tracking server http://127.0.0.1:9 is unreachable .* tracking.enabled: false"):
        StudyTracker(config, tmp_path, "s-1", "s")
    assert list(tmp_path.iterdir()) == []


def test_resume_without_a_study_names_the_folder(tmp_path, capsys):
    from ner_ray.cli import main

    path = tmp_path / "s.yaml"
    path.write_text(f"name: s\ntrain: {{output_dir: {tmp_path / 'out'}}}\n")
    assert main(["tune", str(path), "--resume"]) == 2
    assert f"--resume: {tmp_path / 'out' / 'study.json'} does not exist" in capsys.readouterr().err


def trial(trial_id, status, dev, f1=None, lr=1e-4, seed=42, trainable=1.0):
    return {"experiment": "exp", "trial_id": trial_id, "params": {"train.lr": lr, "train.seed": seed}, "seed": seed,
            "status": status, "stop_reason": status, "dev_f1": dev, "test_f1": f1, "test_precision": f1, "test_recall": f1,
            "test_per_type": {"Disease": {"precision": 0.5, "recall": 0.5, "f1": 0.5, "tp": 1, "fp": 1, "fn": 1}} if f1 else None,
            "evaluations": 2, "epochs": 1.0, "train_seconds": 10.0, "seconds": 12.0, "peak_memory_mb": 100.0,
            "trainable_percent": trainable, "model_path": None}


def test_report_renders_from_results_json_alone(tmp_path, capsys):
    from ner_ray.cli import main

    trials = [trial("a", "completed", 0.6, 0.55, seed=42), trial("b", "completed", 0.62, 0.57, seed=43),
              trial("c", "early_stopped", 0.2, lr=1e-2, trainable=2.0), trial("d", "error", None, lr=5e-2)]
    results = {"study": "s", "study_id": "s-1", "metric": "dev_f1", "mode": "max", "experiments": ["exp"],
               "best": {**trials[1]}, "trials": trials, "mlflow": None}
    (tmp_path / "results.json").write_text(json.dumps(results))
    assert main(["report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("exp ")][1:]  # after the header
    # the two seeds of one config share a row (mean ± std); a stopped trial has no test scores
    assert rows[0].startswith("exp lr=0.0001 (n=2)") and "0.5600 ± 0.0141" in rows[0]
    assert rows[1].startswith("exp lr=0.01 [stopped@2]") and " - " in rows[1]
    assert rows[2].startswith("exp lr=0.05 [error]")
    report = (tmp_path / "report.md").read_text()
    assert "![best dev F1 vs trainable parameters](f1_vs_trainable.png)" in report
    assert "| Disease | 0.5000 |" in report
    assert (tmp_path / "f1_vs_trainable.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(("content", "why"), [("", "not a study record (Expecting value"), ("{}", "not a study record (no study, metric, mode, trials)"),
                                              ("[1, 2]", "not a study record (no study")])
def test_report_on_a_broken_results_json_is_one_line(tmp_path, capsys, content, why):
    from ner_ray.cli import main

    (tmp_path / "results.json").write_text(content)
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {tmp_path / 'results.json'}: {why}")


def test_trial_concurrency_holds_for_every_searcher():
    """A trial's Tune driver reserves almost no CPU, so Tune itself would start every trial at once: the
    limit is tune.max_concurrent_trials, or what the cluster holds at resources.* per trial."""
    from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter

    from ner_ray.tune.space import concurrent_trials, tune_config

    grid = study(**{"search": {"train.lr": {"grid": [1e-4, 2e-4, 3e-4]}}, "tune.searcher.name": "grid",
                    "tune.max_concurrent_trials": 2})
    made = tune_config(grid)
    assert isinstance(made.search_alg, BasicVariantGenerator) and made.search_alg.max_concurrent == 2
    assert made.max_concurrent_trials is None  # Tune would ignore it for the variant generator, with a warning
    optuna = study(**{"search": {"train.lr": {"loguniform": [1e-5, 1e-3]}}, "tune.searcher.name": "optuna"})
    assert tune_config(optuna, cluster={"CPU": 8.0}).max_concurrent_trials == 8
    assert concurrent_trials(optuna.with_updates({"resources.cpus_per_worker": 2, "resources.num_workers": 2}),
                             cluster={"CPU": 9.0}) == 2
    assert concurrent_trials(optuna.with_updates({"resources.use_gpu": True}), cluster={"CPU": 16.0, "GPU": 1.0}) == 1
    assert concurrent_trials(optuna.with_updates({"resources.cpus_per_worker": 4}), cluster={"CPU": 2.0}) == 1
    assert not isinstance(made.search_alg, ConcurrencyLimiter)


def test_concurrent_trials_share_a_node_s_threads():
    """Torch threads per worker: the node's CPUs split among the workers that run on it at once, so two
    concurrent 1-worker trials on 2 cores take 1 thread each, and a lone trial takes both."""
    from ner_ray.train.worker import worker_threads

    res = study().resources
    assert worker_threads(res, node_cpus=2) == 2
    assert worker_threads(res, node_cpus=2, concurrent_trials=2) == 1
    assert worker_threads(res.model_copy(update={"num_workers": 2}), node_cpus=2) == 1
    assert worker_threads(res, node_cpus=16, concurrent_trials=3) == 5
    # on a cluster only what fits on one node shares it: 8 trials of 4 CPUs each, 2 per 8-CPU node
    assert worker_threads(res.model_copy(update={"cpus_per_worker": 4}), node_cpus=8, concurrent_trials=8) == 4
    assert worker_threads(study(**{"resources.threads_per_worker": 3}).resources, node_cpus=2, concurrent_trials=2) == 3
    assert worker_threads(res, node_cpus=1, concurrent_trials=4) == 1
