"""Shared fixtures of the reward tests: the shared data directory and one sandbox pool per module."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from reft_lightning.sandbox import ProgramExecutor

from .support import CANARY, SHARED_DATA


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data directory; fails (never skips) when it is missing."""
    if not (SHARED_DATA / "reft" / "svamp_python_sdp.json").is_file():
        pytest.fail(f"shared data not found at {SHARED_DATA}; clone it beside the repository")
    return SHARED_DATA


@pytest.fixture(scope="module")
def executor() -> Iterator[ProgramExecutor]:
    """A two-worker pool with a 1 s limit and 256 MiB per program, started with a canary variable."""
    os.environ[CANARY] = "leaked"
    try:
        with ProgramExecutor(timeout_s=1.0, memory_mb=256, workers=2) as pool:
            yield pool
    finally:
        os.environ.pop(CANARY, None)
