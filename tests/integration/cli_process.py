"""Run ``reft`` in a fresh interpreter, as a user (or a launcher of several processes) would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

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


def signal_when_paused(
    config: Path, run_dir: Path, signum: signal.Signals, threads: int | None = None
) -> tuple[int, str]:
    """Run ``reft fit`` until its ``PauseAtStep`` callback waits, then send ``signum`` to the process
    it started (rank 0, which launches any others); ``threads`` as in :func:`run_reft`. Returns the
    exit status and what the run wrote to stderr."""
    command = [sys.executable, "-m", "reft_lightning.cli", "fit", f"--config={config}"]
    command.append(f"--trainer.default_root_dir={run_dir}")
    run_dir.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    with (run_dir / "stderr.txt").open("w") as stderr:
        child = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
        assert child.stdout is not None
        for line in child.stdout:
            if line.startswith("paused at step"):
                child.send_signal(signum)
                break
        child.stdout.read()
        status = child.wait(timeout=120)
    return status, (run_dir / "stderr.txt").read_text()
