"""A study's `search` and `tune` blocks as Ray Tune objects: param space, searcher, scheduler.

Search keys are dotted schema keys (`train.lr`, `model.lora.r`); the schema has already checked
every key and every value a domain can take, so nothing here can start a trial with a bad config.
"""

from __future__ import annotations

from typing import Any

from ner_ray.config import StudyConfig
from ner_ray.config.schema import SearchDomain
from ner_ray.errors import ConfigError
from ner_ray.train.schedule import planned_evaluations

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


# Keys whose value changes how many evaluations (Tune reports) a trial makes: ASHA compares trials at equal
# counts of them, so a study that searches one of these cannot use it.
REPORT_COUNT_KEYS = ("train.epochs", "train.evals_per_epoch", "train.eval_steps", "train.max_steps")


def check_scheduler(config: StudyConfig, where: str = "") -> None:
    """A ConfigError, before any trial starts, when ASHA could not know how many reports a trial makes."""
    if config.tune.scheduler.name != "asha":
        return
    searched = [key for key in REPORT_COUNT_KEYS if key in config.search]
    if searched:
        raise ConfigError(f"{where}tune.scheduler asha: searching {', '.join(searched)} changes how many evaluations a "
                          "trial makes, and ASHA compares trials at equal numbers of them; fix it, or use "
                          "tune.scheduler.name: fifo")
    if planned_evaluations(config.train) is None:
        raise ConfigError(f"{where}tune.scheduler asha needs the number of evaluations before training: with "
                          "train.eval_steps set train.max_steps too, or use train.evals_per_epoch")


def asha_max_t(config: StudyConfig) -> int:
    """ASHA's resource bound in Tune iterations: one report per planned evaluation, and the final report
    (test scores, exported model). A trial is never stopped for reaching it before that final report."""
    evaluations = planned_evaluations(config.train)
    if evaluations is None:
        raise ConfigError("ASHA needs a number of evaluations known before training (see check_scheduler)")
    return evaluations + 1


def make_scheduler(config: StudyConfig):
    """ASHA on the ranking metric, one time unit per report (`asha_max_t`); or FIFO (every trial runs to the end)."""
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    scheduler = config.tune.scheduler
    if scheduler.name == "fifo":
        return FIFOScheduler()
    check_scheduler(config)
    max_t = asha_max_t(config)
    return ASHAScheduler(time_attr="training_iteration", max_t=max_t, grace_period=min(scheduler.grace_period, max_t),
                         reduction_factor=scheduler.reduction_factor)


def make_searcher(config: StudyConfig, max_concurrent: int = 0):
    """OptunaSearch (TPE, seeded, known baselines first), wrapped in a Repeater when train.repeats > 1 (each
    proposed config runs with seeds seed, seed+1, ... and Optuna learns their mean); or Ray's variant
    generator for random / grid search and for studies without a search space, running at most
    `max_concurrent` trials at once (0: no limit of its own; `tune_config` limits Searchers)."""
    from ray.tune.search import BasicVariantGenerator, Repeater

    searcher_config = config.tune.searcher
    seed = searcher_config.seed if searcher_config.seed is not None else config.train.seed
    points = [dict(point) for point in searcher_config.points_to_evaluate]
    if not uses_optuna(config):
        return BasicVariantGenerator(points_to_evaluate=points or None, random_state=seed,
                                     max_concurrent=max_concurrent)
    from optuna.samplers import TPESampler
    from ray.tune.search.optuna import OptunaSearch

    sampler = TPESampler(seed=seed, n_startup_trials=searcher_config.startup_trials)
    searcher = OptunaSearch(points_to_evaluate=points or None, sampler=sampler)
    if config.train.repeats > 1 and "train.seed" not in config.search:
        searcher = Repeater(searcher, repeat=config.train.repeats, set_index=True)
    return searcher


def concurrent_trials(config: StudyConfig, cluster: dict[str, float] | None = None) -> int:
    """tune.max_concurrent_trials, or (null) as many trials as the cluster's CPUs and GPUs hold at once.

    A trial's Tune driver reserves no CPU; its Ray Train workers hold the resources. Without this
    limit Tune would start every trial at once, and all but a few would wait for workers.
    `cluster`: ray.cluster_resources() (read from the running Ray when not given)."""
    if config.tune.max_concurrent_trials is not None:
        return config.tune.max_concurrent_trials
    if cluster is None:
        import ray

        cluster = ray.cluster_resources()
    res = config.resources
    fits = [cluster.get("CPU", 0.0) // (res.num_workers * res.cpus_per_worker)]
    if res.use_gpu:
        fits.append(cluster.get("GPU", 0.0) // (res.num_workers * (res.gpus_per_worker or 1)))
    return max(1, int(min(fits)))


def tune_config(config: StudyConfig, cluster: dict[str, float] | None = None):
    """The study's ray.tune.TuneConfig: ranking metric, searcher, scheduler, trial count, concurrency
    (`concurrent_trials`), time budget."""
    from ray import tune

    limit = concurrent_trials(config, cluster)
    # The limit reaches a Searcher through TuneConfig (Tune wraps it in a ConcurrencyLimiter); the variant
    # generator takes it itself (Tune would ignore it there, with a warning).
    optuna = uses_optuna(config)
    return tune.TuneConfig(metric=config.tune.metric, mode=config.tune.mode,
                           search_alg=make_searcher(config, max_concurrent=0 if optuna else limit),
                           scheduler=make_scheduler(config), num_samples=config.tune.num_samples,
                           max_concurrent_trials=limit if optuna else None, time_budget_s=config.tune.time_budget_s)


def trial_updates(params: dict[str, Any], config: StudyConfig) -> dict[str, Any]:
    """A trial's sampled params as dotted updates of `config`; a Repeater's index shifts train.seed."""
    updates = {key: value for key, value in params.items() if not key.startswith("__")}
    if TRIAL_INDEX in params:
        updates["train.seed"] = updates.get("train.seed", config.train.seed) + int(params[TRIAL_INDEX])
    return updates
