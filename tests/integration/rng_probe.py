"""A callback that records every process's random-generator states after each training step."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

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


class RecordRNG(Callback):
    """Appends ``{step: digest}`` to ``{out}/rank{r}.json`` after every training step."""

    def __init__(self, out: str) -> None:
        self.out = Path(out)

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        path = self.out / f"rank{trainer.global_rank}.json"
        record = json.loads(path.read_text()) if path.is_file() else {}
        record[str(trainer.global_step)] = state_digest()
        self.out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))
