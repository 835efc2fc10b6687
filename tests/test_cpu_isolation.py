"""ner_ray/train/cpu_isolation.py: a local Ray's processes start under SCHED_BATCH and its workers with
MALLOC_ARENA_MAX=1; a training thread goes back to SCHED_OTHER only when it was started that way. (The local Ray
itself is checked in tests/test_local_ray.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from ner_ray.train.cpu_isolation import (
    ONE_ARENA_ENV,
    RESTORE_ENV,
    batch_scheduled,
    can_schedule,
    one_malloc_arena,
    restore_training_thread,
)

pytestmark = pytest.mark.skipif(not can_schedule(), reason="scheduling policies are Linux's")
CHILD_POLICY = [sys.executable, "-c", "import os; print(os.sched_getscheduler(0))"]


def on_thread(fn):
    """`fn()` on a new thread: a scheduling policy set there stays there."""
    result: dict = {}

    def run():
        try:
            result["value"] = fn()
        except BaseException as error:  # noqa: BLE001  (re-raised on the calling thread)
            result["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


def test_processes_started_inside_run_batch_scheduled_and_the_thread_gets_its_policy_back():
    def scenario():
        with batch_scheduled() as env:
            inside = os.sched_getscheduler(0)
            child = int(subprocess.run(CHILD_POLICY, capture_output=True, text=True, check=True).stdout)
        return env, inside, child, os.sched_getscheduler(0)

    env, inside, child, after = on_thread(scenario)
    assert (inside, child, after) == (os.SCHED_BATCH, os.SCHED_BATCH, os.SCHED_OTHER)
    assert env == {**ONE_ARENA_ENV, RESTORE_ENV: "1"} and env["MALLOC_ARENA_MAX"] == "1"


def test_a_driver_that_chose_another_policy_keeps_it_and_its_workers_are_not_told_to_restore():
    def scenario():
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))  # as under `chrt -b 0 ner-ray train ...`
        with batch_scheduled() as env:
            inside = os.sched_getscheduler(0)
        return env, inside, os.sched_getscheduler(0)

    env, inside, after = on_thread(scenario)
    assert (inside, after) == (os.SCHED_BATCH, os.SCHED_BATCH)
    assert env == ONE_ARENA_ENV


@pytest.mark.parametrize(("flag", "expected"), [("1", "SCHED_OTHER"), (None, "SCHED_BATCH")])
def test_the_training_thread_restores_only_when_its_worker_was_started_batch_scheduled(monkeypatch, flag, expected):
    if flag is None:
        monkeypatch.delenv(RESTORE_ENV, raising=False)
    else:
        monkeypatch.setenv(RESTORE_ENV, flag)

    def scenario():
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))  # the worker process's policy, inherited
        restore_training_thread()
        return os.sched_getscheduler(0)

    assert on_thread(scenario) == getattr(os, expected)
    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # the calling thread never changed


def test_one_malloc_arena_for_the_encoder_families_only():
    assert one_malloc_arena(None) and one_malloc_arena("token_cls") and one_malloc_arena("crf")
    assert not one_malloc_arena("span_gen") and not one_malloc_arena("instruct")

    def scenario():
        with batch_scheduled(one_arena=False) as env:
            return env

    assert on_thread(scenario) == {RESTORE_ENV: "1"}
