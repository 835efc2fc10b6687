"""The evaluation plan (train/schedule.py): exact steps for round and odd step counts, and the number of
evaluations the driver plans for (ASHA's bound) never below what a run makes."""

from __future__ import annotations

import pytest

from ner_ray.config import StudyConfig
from ner_ray.train.schedule import evaluation_steps, planned_evaluations


def train(**updates):
    return StudyConfig().with_updates({f"train.{k}": v for k, v in updates.items()}).train


def test_odd_steps_per_epoch_still_give_evals_per_epoch_each_epoch():
    # 7 steps an epoch, 3 epochs, 2 evaluations an epoch: HF's integer eval_steps (3) would evaluate 7 times.
    steps = evaluation_steps(21, train(epochs=3, evals_per_epoch=2))
    assert steps == [4, 7, 11, 14, 18, 21]
    assert [sum(1 for s in steps if 7 * e < s <= 7 * (e + 1)) for e in range(3)] == [2, 2, 2]


def test_eval_steps_evaluate_at_every_interval_and_at_the_last_step():
    assert evaluation_steps(10, train(eval_steps=3)) == [3, 6, 9, 10]
    assert evaluation_steps(9, train(eval_steps=3)) == [3, 6, 9]
    assert evaluation_steps(2, train(eval_steps=5)) == [2]


def test_fewer_steps_than_evaluations_evaluate_at_every_step():
    assert evaluation_steps(3, train(epochs=2, evals_per_epoch=4)) == [1, 2, 3]


@pytest.mark.parametrize("total", range(1, 60))
@pytest.mark.parametrize("settings", [{"epochs": 3, "evals_per_epoch": 2}, {"epochs": 1}, {"epochs": 4, "evals_per_epoch": 3},
                                      {"eval_steps": 4, "max_steps": 13}, {"eval_steps": 1, "max_steps": 5}])
def test_a_run_never_evaluates_more_often_than_planned(settings, total):
    config = train(**settings)
    total = config.max_steps or total
    steps = evaluation_steps(total, config)
    assert steps[-1] == total and steps == sorted(set(steps))
    assert len(steps) <= planned_evaluations(config)
    if total >= planned_evaluations(config):
        assert len(steps) == planned_evaluations(config)


def test_eval_steps_without_max_steps_depend_on_the_data():
    assert planned_evaluations(train(eval_steps=4)) is None
