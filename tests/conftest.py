"""Test-wide settings: offline, telemetry off, one torch thread (the CI machine is shared)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mmfedrec.runtime import configure_runtime
from tests.federation.helpers import flower_processes

configure_runtime(threads=1)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real development data (research-only, never committed); tests using it skip without it."""
    if not (SHARED_DATA / "ml-100k" / "u.data").exists():
        pytest.skip(f"real data not found under {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session", autouse=True)
def no_flower_process_left_behind():
    """Every SuperLink, SuperNode and app process a test starts is gone when the tests end."""
    before = set(flower_processes())
    yield
    deadline = time.monotonic() + 15.0  # a process told to stop may take a moment
    while (
        left := {pid: c for pid, c in flower_processes().items() if pid not in before}
    ) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, f"Flower processes left behind by the tests: {left}"
