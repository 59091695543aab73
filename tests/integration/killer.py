"""Test callbacks: SIGKILL after a given optimizer step (a crash), or pause there for a signal."""

from __future__ import annotations

import os
import signal
import time

import lightning as L
from lightning.pytorch.callbacks import Callback

from reft_lightning.checkpoints import LastCheckpoint


class KillAfterStep(Callback):
    """SIGKILL this process once ``trainer.global_step`` reaches ``step`` (after checkpoint callbacks)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class PauseAtStep(Callback):
    """At ``trainer.global_step == step``, rank 0 prints ``paused at step {step}`` and waits (up to
    a minute) for a signal that its ``LastCheckpoint`` records, so a test can signal it at a known
    step; other ranks go on to ``LastCheckpoint``, which waits for rank 0 to decide with them.

    Lightning runs checkpoint callbacks after the others, so the save sees the signal in this batch.
    """

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step != self.step or trainer.global_rank != 0:
            return
        last = next(c for c in trainer.callbacks if isinstance(c, LastCheckpoint))
        print(f"paused at step {self.step}", flush=True)
        deadline = time.monotonic() + 60
        while last.received is None and time.monotonic() < deadline:
            time.sleep(0.02)
