"""A study's `search` and `tune` blocks as Ray Tune objects: param space, searcher, scheduler.

Search keys are dotted schema keys (`train.lr`, `model.lora.r`); the schema has already checked
every key and every value a domain can take, so nothing here can start a trial with a bad config.
"""

from __future__ import annotations

from typing import Any

from ner_ray.config import StudyConfig
from ner_ray.config.schema import SearchDomain

TRIAL_INDEX = "__trial_index__"  # set by ray.tune.search.Repeater: repeat k of a config trains with seed + k


def tune_domain(domain: SearchDomain):
    """One `search` entry as the ray.tune sampling domain of the same name."""
    from ray import tune

    args = domain.args
    if domain.kind == "loguniform":
        return tune.loguniform(*args)
    if domain.kind == "uniform":
        return tune.uniform(*args)
    if domain.kind == "randint":
        return tune.randint(*args)
    if domain.kind == "choice":
        return tune.choice(args)
    return tune.grid_search(args)


def uses_optuna(config: StudyConfig) -> bool:
    """Optuna proposes the trials (a study with no search space runs Ray's variant generator instead)."""
    return config.tune.searcher.name == "optuna" and bool(config.search)


def param_space(config: StudyConfig) -> dict[str, Any]:
    """Dotted key -> ray.tune domain, for every key of the study's search block. With train.repeats > 1
    and no Optuna, the seeds are a grid (with Optuna, `make_searcher`'s Repeater repeats each proposal)."""
    from ray import tune

    space = {key: tune_domain(domain) for key, domain in config.search.items()}
    if config.train.repeats > 1 and not uses_optuna(config) and "train.seed" not in space:
        space["train.seed"] = tune.grid_search([config.train.seed + i for i in range(config.train.repeats)])
    return space


def evaluations_per_trial(config: StudyConfig) -> int:
    """Dev evaluations a trial that is never stopped makes (ASHA's time axis)."""
    if config.tune.scheduler.max_t is not None:
        return config.tune.scheduler.max_t
    return config.train.epochs * config.train.evals_per_epoch


def make_scheduler(config: StudyConfig):
    """ASHA on the ranking metric, one time unit per evaluation; or FIFO (every trial runs to the end).

    The worker reports once per evaluation and once more at the end (test metrics, exported model), so
    ASHA's max_t is the evaluation count + 1: a trial that reaches its last evaluation is never cut
    before that final report.
    """
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    scheduler = config.tune.scheduler
    if scheduler.name == "fifo":
        return FIFOScheduler()
    max_t = evaluations_per_trial(config) + 1
    return ASHAScheduler(time_attr="training_iteration", max_t=max_t, grace_period=min(scheduler.grace_period, max_t),
                         reduction_factor=scheduler.reduction_factor)


def make_searcher(config: StudyConfig):
    """OptunaSearch (TPE, seeded, known baselines first), wrapped in a Repeater when train.repeats > 1 (each
    proposed config runs with seeds seed, seed+1, ... and Optuna learns their mean); or Ray's variant
    generator for random / grid search and for studies without a search space."""
    from ray.tune.search import BasicVariantGenerator, Repeater

    searcher_config = config.tune.searcher
    seed = searcher_config.seed if searcher_config.seed is not None else config.train.seed
    points = [dict(point) for point in searcher_config.points_to_evaluate]
    if not uses_optuna(config):
        return BasicVariantGenerator(points_to_evaluate=points or None, random_state=seed)
    from optuna.samplers import TPESampler
    from ray.tune.search.optuna import OptunaSearch

    searcher = OptunaSearch(points_to_evaluate=points or None, sampler=TPESampler(seed=seed))
    if config.train.repeats > 1 and "train.seed" not in config.search:
        searcher = Repeater(searcher, repeat=config.train.repeats, set_index=True)
    return searcher


def trial_updates(params: dict[str, Any], config: StudyConfig) -> dict[str, Any]:
    """A trial's sampled params as dotted updates of `config`; a Repeater's index shifts train.seed."""
    updates = {key: value for key, value in params.items() if not key.startswith("__")}
    if TRIAL_INDEX in params:
        updates["train.seed"] = updates.get("train.seed", config.train.seed) + int(params[TRIAL_INDEX])
    return updates
