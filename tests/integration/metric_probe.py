"""A callback that records, per process, logged training metrics after every PPO iteration."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback


class RecordMetrics(Callback):
    """Writes ``{iteration: {name: value}}`` of ``names`` to ``{out}/rank{r}.json`` after every step."""

    def __init__(self, out: str, names: list[str]) -> None:
        self.out = Path(out)
        self.names = names

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: object) -> None:
        path = self.out / f"rank{trainer.global_rank}.json"
        record = json.loads(path.read_text()) if path.is_file() else {}
        record[str(pl_module.iterations)] = {n: float(trainer.callback_metrics[n]) for n in self.names}
        self.out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))
