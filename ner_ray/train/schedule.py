"""When a run evaluates: the optimiser steps of its dev evaluations.

Each evaluation is also a checkpoint and one report to Ray (a Tune iteration), and the run's final
report (test scores, exported model) comes after the last one; so the number of evaluations fixes how
many reports a trial makes, and ASHA's resource bound is computed from it (`planned_evaluations`).
Pure: the train block and the run's total optimiser steps in, steps out.
"""

from __future__ import annotations

import math

from ner_ray.config import TrainConfig


def evaluation_steps(total_steps: int, train: TrainConfig) -> list[int]:
    """The steps after which a run of `total_steps` optimiser steps evaluates, the last one always included.

    With train.eval_steps: every eval_steps steps, and the last step. Otherwise epochs x evals_per_epoch
    evaluations spread evenly (at ceil(k x total / n)), so an odd number of steps per epoch still gives
    exactly evals_per_epoch of them per epoch (fewer only when the run has fewer steps than evaluations).
    """
    if total_steps < 1:
        raise ValueError(f"a run needs at least one optimiser step, got {total_steps}")
    if train.eval_steps is not None:
        steps = list(range(train.eval_steps, total_steps + 1, train.eval_steps))
        return steps if steps and steps[-1] == total_steps else [*steps, total_steps]
    n = train.epochs * train.evals_per_epoch
    return sorted({math.ceil(k * total_steps / n) for k in range(1, n + 1)})


def planned_evaluations(train: TrainConfig) -> int | None:
    """How many evaluations a run makes when the train block alone decides it: epochs x evals_per_epoch, or
    with eval_steps, the evaluations of max_steps steps; None when it depends on the data (eval_steps
    without max_steps). A run with fewer optimiser steps than that makes fewer, never more."""
    if train.eval_steps is None:
        return train.epochs * train.evals_per_epoch
    if train.max_steps is not None:
        return math.ceil(train.max_steps / train.eval_steps)
    return None
