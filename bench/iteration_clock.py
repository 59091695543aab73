"""A callback for timing benchmarks: the wall-clock seconds of every training batch (a ReFT
iteration), appended to ``{trainer.default_root_dir}/iteration_seconds.txt``, one per line.

Named in a config as ``iteration_clock.IterationClock`` with ``bench/`` on ``PYTHONPATH``
(``bench/ppo_vs_trl.py`` does this). An interval runs from one batch's end to the next (the first
from when training starts), so it holds everything the loop does per iteration, as the clock of the
TRL worker does.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L


class IterationClock(L.Callback):
    """Append each training batch's wall-clock seconds to ``iteration_seconds.txt`` in the run directory."""

    def __init__(self) -> None:
        self.clock = time.perf_counter()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.clock = time.perf_counter()
        (Path(trainer.default_root_dir) / "iteration_seconds.txt").write_text("")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        now = time.perf_counter()
        with (Path(trainer.default_root_dir) / "iteration_seconds.txt").open("a") as handle:
            handle.write(f"{now - self.clock:.6f}\n")
        self.clock = now
