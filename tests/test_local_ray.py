"""The local Ray a study starts for itself (train/run.py `start_local_ray`) listens on loopback only: every
listening socket of the driver and of every process it started (GCS, raylet, dashboard, agents, metrics
export, workers) is on 127.0.0.1 (or ::1), and Ray's token authentication stays on; its processes run
batch-scheduled, its workers with one malloc arena, Ray Train's preemption watcher off
(ner_ray/train/cpu_isolation.py)."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys

import pytest

pytest.importorskip("ray")

LIST_LISTENERS = """
import json, os, psutil, ray
from ner_ray.train.run import start_local_ray

start_local_ray(num_cpus=1)

@ray.remote
class Echo:
    def ping(self, x):
        return x

def worker_setting():
    import os
    return (os.sched_getscheduler(0), os.environ.get("MALLOC_ARENA_MAX"), os.getpriority(os.PRIO_PROCESS, 0),
            os.environ.get("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"))

assert ray.get(Echo.remote().ping.remote(1)) == 1  # an actor, and a task below
worker = ray.get(ray.remote(worker_setting).remote())
me = psutil.Process()
policies = {process.name(): os.sched_getscheduler(process.pid) for process in me.children(recursive=True)
            if process.name() in ("gcs_server", "raylet")}
listeners = []
for process in [me, *me.children(recursive=True)]:
    try:
        connections, name = process.net_connections(kind="inet"), process.name()
    except psutil.NoSuchProcess:  # a short-lived child (a worker Ray started and ended) gone since children()
        continue
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN:
            listeners.append([name, conn.laddr.ip, conn.laddr.port])
from ray._private.authentication.authentication_utils import is_token_auth_enabled
print(json.dumps({"listeners": listeners, "auth": is_token_auth_enabled(), "worker": worker, "policies": policies,
                  "driver_env": sorted(os.environ),
                  "driver_policy": os.sched_getscheduler(0), "batch": os.SCHED_BATCH, "other": os.SCHED_OTHER}))
ray.shutdown()
"""


def is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


@pytest.fixture(scope="module")
def report() -> dict:
    """What LIST_LISTENERS saw in a local Ray of its own (one start for this module's tests)."""
    done = subprocess.run([sys.executable, "-c", LIST_LISTENERS], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_local_ray_listens_on_loopback_only(report):
    names = {name for name, _, _ in report["listeners"]}
    assert {"gcs_server", "raylet"} <= names and len(report["listeners"]) >= 8, report  # it saw Ray's servers
    exposed = [entry for entry in report["listeners"] if not is_loopback(entry[1])]
    assert exposed == [], exposed
    assert report["auth"], "Ray's token authentication is off"


def test_the_local_ray_runs_batch_scheduled_with_one_malloc_arena_per_worker_at_niceness_0(report):
    """ner_ray/train/cpu_isolation.py: Ray's daemons and workers under SCHED_BATCH, the driver back to SCHED_OTHER,
    the workers with MALLOC_ARENA_MAX=1 (no family named: an encoder's setting), at niceness 0, not Ray's 15, and
    with Ray Train's preemption watcher off."""
    assert report["policies"] == {"gcs_server": report["batch"], "raylet": report["batch"]}, report
    assert report["worker"] == [report["batch"], "1", 0, "0"] and report["driver_policy"] == report["other"], report
    for key in ("RAY_worker_niceness", "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"):  # set while Ray started, then restored
        assert key not in report["driver_env"], report


@pytest.mark.parametrize(("ip", "loopback"), [("127.0.0.1", True), ("::1", True), ("::ffff:127.0.0.1", True),
                                               ("0.0.0.0", False), ("::", False), ("192.0.2.2", False)])
def test_what_counts_as_loopback(ip, loopback):
    assert is_loopback(ip) == loopback
