"""Callbacks that record, per process, a value after every training step into ``{out}/rank{r}.json``."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback


def state_digest() -> str:
    """A short digest of this process's Python, NumPy and torch CPU generator states."""
    digest = hashlib.sha256(repr(random.getstate()).encode())
    digest.update(repr(np.random.get_state()[1].tolist()).encode())
    digest.update(torch.get_rng_state().numpy().tobytes())
    return digest.hexdigest()[:16]


class PerRankRecord(Callback):
    """After every training step, ``{key: value}`` joins ``{out}/rank{r}.json``; subclasses say what."""

    def __init__(self, out: str) -> None:
        self.out = Path(out)

    def record(self, trainer: L.Trainer, pl_module: L.LightningModule) -> tuple[str, Any]:
        raise NotImplementedError

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: object) -> None:
        key, value = self.record(trainer, pl_module)
        path = self.out / f"rank{trainer.global_rank}.json"
        records = json.loads(path.read_text()) if path.is_file() else {}
        records[key] = value
        self.out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(records))


class RecordRNG(PerRankRecord):
    """``{optimizer step: digest of the RNG states}``."""

    def record(self, trainer: L.Trainer, pl_module: L.LightningModule) -> tuple[str, Any]:
        return str(trainer.global_step), state_digest()


class RecordMetrics(PerRankRecord):
    """``{PPO iteration: {name: logged value}}`` for ``names``."""

    def __init__(self, out: str, names: list[str]) -> None:
        super().__init__(out)
        self.names = names

    def record(self, trainer: L.Trainer, pl_module: L.LightningModule) -> tuple[str, Any]:
        return str(pl_module.iterations), {n: float(trainer.callback_metrics[n]) for n in self.names}
