"""Keeping a local Ray's own processes out of the way of CPU training (issue 14, the Ray overhead).

CPU training is a few OpenMP threads in lockstep on all the cores; whatever takes a core from one of them
stalls every parallel region. Two things Ray brings do that, and `start_local_ray` applies both measures below to
the local Ray it starts (a cluster someone else started is left as it is):

- Wake-ups. Every Ray worker and actor process checks for signals every 10 ms, and Ray Train adds six actors
  beside the training worker; on Linux each wake-up preempts a running training thread (measured: ~620
  involuntary context switches a second per training thread under `ner-ray train`, ~20 without Ray). Ray's
  processes therefore start under SCHED_BATCH (`batch_scheduled`): the kernel never lets a batch thread preempt
  a running one on wake-up, it runs at the next tick instead and keeps its fair share of CPU. The training thread
  goes back to SCHED_OTHER (`restore_training_thread`) before its OpenMP pool exists, so the pool's threads
  inherit it.
- Niceness. Ray's raylet starts its workers at niceness 15 (weight 36 in the kernel's fair scheduler), its daemons
  stay at 0 (weight 1024): whenever a daemon ran, it got 28 times the training threads' share of a core.
  `start_local_ray` sets `RAY_worker_niceness=0`, so the training threads weigh as much as any of Ray's processes
  (a value the user set is kept).
- Page faults. Ray Train runs the training function on a thread of its own, and glibc gives each thread its own
  arena of 64 MB heaps; a tensor larger than the room left in one (a BERT vocabulary's 47 MB embedding
  gradient) is then mmapped afresh at every step and faulted in page by page (measured: ~27,000 minor faults a
  second per training thread, ~2,500 when the same steps run on the main thread). `MALLOC_ARENA_MAX=1` in the
  workers' environment (`ONE_ARENA_ENV`) makes every thread allocate from the main arena, as a main thread does.
  For the encoder families only (`one_malloc_arena`): a causal LM's training threads then wait on that arena's
  lock, which Ray's own threads in the worker share (measured, SmolLM2-135M span_gen under Ray Train: ~5,100
  voluntary context switches a second per training thread, 2.83 samples/s against 3.58 without the setting;
  its page faults, ~49,000 a second per thread either way, cost less).
- Idle watchers. Ray Train starts a PreemptionWatcher actor beside every worker group that asks the GCS for draining
  nodes every 5 s (measured: 2.3% of a core while SmolLM2 span_gen trained, the most of any of Ray's processes). A
  local Ray has no autoscaler to drain its one node, so `start_local_ray` turns the watcher off
  (`PREEMPTION_WATCHER`=0; a value the user set is kept).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

logger = logging.getLogger(__name__)

RESTORE_ENV = "NER_RAY_TRAINING_THREAD_SCHED_OTHER"
WORKER_NICENESS = "RAY_worker_niceness"  # the raylet's setting (Ray's default 15): `start_local_ray` sets 0
ONE_ARENA_ENV = {"MALLOC_ARENA_MAX": "1"}
PREEMPTION_WATCHER = "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"  # Ray Train's switch (default on): `start_local_ray` sets 0


def can_schedule() -> bool:
    return all(hasattr(os, name) for name in ("sched_getscheduler", "sched_setscheduler", "SCHED_BATCH"))


def switch_policy(policy: int) -> bool:
    """The calling thread under `policy` (priority 0); False where the system forbids it (a seccomp profile or an
    LSM), and the thread then keeps the policy it had."""
    try:
        os.sched_setscheduler(0, policy, os.sched_param(0))
    except OSError as error:
        logger.warning("the thread keeps scheduling policy %s: %s", os.sched_getscheduler(0), error)
        return False
    return True


def one_malloc_arena(family: str | None) -> bool:
    """Whether the workers of a local Ray started for studies of `family` get ONE_ARENA_ENV: for an encoder family,
    or when no family is named; not for a generative one (see the module's notes)."""
    from ner_ray.registry import FAMILIES

    return family is None or not getattr(FAMILIES.get(family), "generates_text", False)


@contextlib.contextmanager
def batch_scheduled(one_arena: bool = True) -> Iterator[dict[str, str]]:
    """The calling thread, and so every process it starts meanwhile (Ray's daemons and, through the raylet, its
    workers), under SCHED_BATCH; SCHED_OTHER again afterwards. Yields the environment variables for those
    workers (Ray's runtime_env env_vars): ONE_ARENA_ENV where `one_arena`, and when batch scheduling applies, the one that tells
    `restore_training_thread` to undo it. Only from SCHED_OTHER: a driver under a real-time, batch or idle policy
    chose it, and Ray's processes inherit it unchanged."""
    batch = can_schedule() and os.sched_getscheduler(0) == os.SCHED_OTHER and switch_policy(os.SCHED_BATCH)
    try:
        arena = dict(ONE_ARENA_ENV) if one_arena else {}
        yield {**arena, RESTORE_ENV: "1"} if batch else arena
    finally:
        if batch:
            switch_policy(os.SCHED_OTHER)


def restore_training_thread() -> None:
    """In a Ray Train worker's training thread: back to SCHED_OTHER when `batch_scheduled` started the worker
    under SCHED_BATCH, so that Ray's batch-scheduled threads cannot preempt it. Call it before the thread's first
    parallel torch op: the OpenMP threads it creates then inherit the policy. Elsewhere (a cluster ner_ray did
    not start) nothing changes."""
    if os.environ.get(RESTORE_ENV) == "1" and can_schedule() and os.sched_getscheduler(0) == os.SCHED_BATCH:
        switch_policy(os.SCHED_OTHER)
