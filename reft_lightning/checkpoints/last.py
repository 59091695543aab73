"""``LastCheckpoint``: ``last.ckpt`` always holds the newest state, and a signal saves before exiting.

Lightning's ``ModelCheckpoint(save_last=True)`` rewrites ``last.ckpt`` only when it also saves a
top-k checkpoint, so after a run whose best epoch came early ``last`` is that epoch, and resuming
from it repeats training. This callback owns ``last.ckpt`` instead: it writes it every
``every_n_train_batches`` training batches (SFT optimizer steps, ReFT iterations), at the end of
training, and at the first batch boundary after SIGTERM or SIGINT, then exits.

Signals (installed for ``fit`` in the main thread, the previous handlers restored afterwards):

- SIGTERM (what SLURM and Kubernetes send before a kill): save ``last.ckpt`` at the end of the
  current batch, then exit with status 0. It replaces Lightning's own SIGTERM handler, which
  exits 0 without saving.
- SIGINT (Ctrl+C): the same, with exit status 130. A second Ctrl+C interrupts at once (no save).

Processes decide together: at every batch end they agree whether any of them was signalled, so
all of them save and exit at the same batch (one all-reduce of a flag per batch, only with more
than one process).
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.utilities.rank_zero import rank_zero_info

from reft_lightning.checkpoints.files import remove_checkpoint, replace_checkpoint

EXIT_STATUS = {signal.SIGTERM: 0, signal.SIGINT: 130}
"""Exit status after saving on each signal (130 is the shell's for an interrupt)."""


class LastCheckpoint(Checkpoint):
    """Keep ``{dirpath}/last.ckpt`` the newest training state (see the module docstring).

    The ``reft`` command adds one unless the config lists one or sets
    ``trainer.enable_checkpointing: false``; ``--ckpt_path last`` resumes from its file.

    Args:
        dirpath: folder of ``last.ckpt``; ``None`` means ``{trainer.default_root_dir}/checkpoints``.
        every_n_train_batches: save every N training batches (optimizer steps for SFT, PPO
            iterations for ReFT); 0 saves only at the end of training and on a signal.
    """

    FILENAME = "last.ckpt"

    def __init__(self, dirpath: str | None = None, every_n_train_batches: int = 100) -> None:
        if every_n_train_batches < 0:
            raise ValueError(f"every_n_train_batches must be >= 0, got {every_n_train_batches}")
        self.dirpath = dirpath
        self.every_n_train_batches = every_n_train_batches
        self.received: signal.Signals | None = None
        """The first signal received since training started, or ``None``."""
        self.saved: Path | None = None
        """The file this callback last wrote (``RunReport`` names it), or ``None``."""
        self._previous_handlers: dict[signal.Signals, Any] = {}

    def path(self, trainer: L.Trainer) -> Path:
        """Where ``last.ckpt`` is written."""
        folder = (
            Path(self.dirpath) if self.dirpath is not None else Path(trainer.default_root_dir) / "checkpoints"
        )
        return folder / self.FILENAME

    def save(self, trainer: L.Trainer) -> Path:
        """Write the current state to :meth:`path` (every process takes part, as in any save).

        The state goes to ``.last.ckpt.partial`` first and then replaces ``last.ckpt``
        (:func:`replace_checkpoint`), so that a sharded checkpoint, a directory that its processes
        write file by file, is never half old and half new.
        """
        path = self.path(trainer)
        partial = path.with_name(f".{path.name}.partial")
        if trainer.is_global_zero:
            remove_checkpoint(partial)  # what a killed save left
        trainer.strategy.barrier()
        trainer.save_checkpoint(partial)
        if trainer.is_global_zero:
            replace_checkpoint(partial, path)
        trainer.strategy.barrier()
        self.saved = path
        return path

    # ------------------------------------------------------------------ signals

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Install the handlers here: the Trainer registers its own SIGTERM handler just before."""
        self.received = None
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in EXIT_STATUS:
            self._previous_handlers[signum] = signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signal.Signals(signum)
        if signum == signal.SIGINT:  # a second Ctrl+C interrupts without saving
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def _restore_handlers(self) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers = {}

    # ------------------------------------------------------------------ saves

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        stop = trainer.strategy.reduce_boolean_decision(self.received is not None, all=False)
        batches = trainer.fit_loop.epoch_loop.total_batch_idx + 1
        due = self.every_n_train_batches > 0 and batches % self.every_n_train_batches == 0
        if not (stop or due):
            return
        path = self.save(trainer)
        if not stop:
            return
        name = self.received.name if self.received is not None else "a signal (on another process)"
        status = EXIT_STATUS.get(self.received, 0)
        rank_zero_info(
            f"{name} received: saved {path} after training batch {batches}; "
            f"resume with --ckpt_path last (exit status {status})"
        )
        self._restore_handlers()
        raise SystemExit(status)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore_handlers()
        self.save(trainer)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._restore_handlers()

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._restore_handlers()
