"""Run ``reft`` in a fresh interpreter, as a user (or a launcher of several processes) would."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO


def run_reft(*args: str, threads: int | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m reft_lightning.cli <args>`` from the repository, with ``tests`` importable (for
    test callbacks named in configs); ``threads`` sets ``OMP_NUM_THREADS`` (one per process when
    two processes share the CPU). Returns the finished process; the caller checks its exit code."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    command = [sys.executable, "-m", "reft_lightning.cli", *args]
    return subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)


def run_reft_ok(*args: str) -> None:
    """:func:`run_reft` on one thread per process, failing with the end of stderr unless it exits 0."""
    result = run_reft(*args, threads=1)
    assert result.returncode == 0, result.stderr[-3000:]
