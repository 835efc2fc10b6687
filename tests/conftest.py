"""Shared test fixtures: where ../shared/data lies, and a skip marker for when it is absent."""

from __future__ import annotations

import contextlib
import os
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

    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
