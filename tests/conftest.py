"""Test-wide settings: offline, telemetry off, one torch thread (the CI machine is shared)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmfedrec.runtime import configure_runtime

configure_runtime(threads=1)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real development data (research-only, never committed); tests using it skip without it."""
    if not (SHARED_DATA / "ml-100k" / "u.data").exists():
        pytest.skip(f"real data not found under {SHARED_DATA}")
    return SHARED_DATA
