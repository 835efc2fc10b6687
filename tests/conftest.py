"""Shared test fixtures: where ../shared/data lies, and a skip marker for when it is absent."""

from __future__ import annotations

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
