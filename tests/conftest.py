"""Shared test fixtures: where ../shared/data lies, and a skip marker for when it is absent."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# CI always has ../shared beside the checkout: there, a missing folder is a failure, not a skip.
if os.environ.get("CI") and not SHARED_DATA.is_dir():
    raise RuntimeError(f"CI run without the shared corpora at {SHARED_DATA}")
needs_shared = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data not present")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data not present")
    return SHARED_DATA


@contextlib.contextmanager
def local_ray(env: dict[str, str]):
    """A local 2-CPU Ray started with `env` set (every Ray process inherits it); env restored afterwards."""
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    import ray

    from ner_ray.train.run import start_local_ray

    start_local_ray(num_cpus=2)
    try:
        yield
    finally:
        ray.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def kill_worker_after_first_checkpoint(storage: Path, killed: list[int], stop: threading.Event,
                                       pattern: str = "*/checkpoint_manager_snapshot.json") -> None:
    """SIGKILL this session's Ray Train worker once a Ray Train controller under `storage` has registered
    its first checkpoint (it writes the snapshot then; a checkpoint only uploaded would be lost with the worker)."""
    import psutil

    while not stop.is_set():
        if any(storage.glob(pattern)):
            workers = [p for p in psutil.Process().children(recursive=True) if p.name().startswith("ray::RayTrainWor")]
            for worker in workers:
                worker.kill()
                killed.append(worker.pid)
            if workers:
                return
        time.sleep(0.05)


def wait_for_http(url: str, server: subprocess.Popen, log: Path, timeout_s: float = 300) -> None:
    """Wait until `url` answers 200, failing with the server's log if it exits or the time runs out."""
    import requests

    deadline = time.time() + timeout_s
    while time.time() < deadline and server.poll() is None:
        try:
            if requests.get(url, timeout=2).ok:
                return
        except requests.RequestException:
            time.sleep(0.5)
    server.kill()
    pytest.fail(f"{url} did not answer within {timeout_s} s:\n{log.read_text()[-3000:] if log.is_file() else ''}")
