"""Callbacks the soak benchmark names in its configs (``bench/`` is on ``PYTHONPATH`` there)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback


def resident_mb() -> float:
    """This process's resident memory in MiB (``VmRSS`` from ``/proc``; Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class RecordMemory(Callback):
    """Append ``iteration,rss_mb,seconds`` to ``out`` every ``every`` training batches."""

    def __init__(self, out: str, every: int = 50) -> None:
        self.out, self.every = Path(out), every
        self._started = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        batches = trainer.fit_loop.epoch_loop.total_batch_idx + 1
        if batches % self.every == 0:
            with self.out.open("a") as handle:
                handle.write(f"{batches},{resident_mb():.1f},{time.perf_counter() - self._started:.1f}\n")


class KillAtBatch(Callback):
    """SIGKILL this process at the end of training batch ``batch`` (counted over the whole run)."""

    def __init__(self, batch: int) -> None:
        self.batch = batch

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.fit_loop.epoch_loop.total_batch_idx + 1 >= self.batch:
            os.kill(os.getpid(), signal.SIGKILL)
