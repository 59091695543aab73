"""A callback that kills its own process with SIGKILL after a given optimizer step (crash simulation)."""

from __future__ import annotations

import os
import signal

import lightning as L
from lightning.pytorch.callbacks import Callback


class KillAfterStep(Callback):
    """SIGKILL this process once ``trainer.global_step`` reaches ``step`` (after checkpoint callbacks)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)
