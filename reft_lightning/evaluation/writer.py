"""Stream ``reft predict`` records to JSONL as they are produced, one file per process."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import BasePredictionWriter


class PredictionWriter(BasePredictionWriter):
    """Append each predicted batch's records (one JSON object per question) to a JSONL file.

    Records are written and flushed per batch, so ``n`` samples x thousands of questions never sit in
    memory (run ``reft predict`` with ``--return_predictions false``, the CLI's default). With
    several processes, process ``r`` writes ``{stem}.rank{r}.jsonl``; each question is answered by one
    process. The file is truncated when prediction starts.

    Args:
        path: the JSONL file; ``None`` means ``{trainer.default_root_dir}/predictions.jsonl``.
    """

    def __init__(self, path: str | None = None) -> None:
        super().__init__(write_interval="batch")
        self.path = path
        self._file: Path | None = None

    def file_for(self, trainer: L.Trainer) -> Path:
        """The file this process writes."""
        default = Path(trainer.default_root_dir) / "predictions.jsonl"
        path = Path(self.path) if self.path is not None else default
        if trainer.world_size > 1:
            path = path.with_name(f"{path.stem}.rank{trainer.global_rank}{path.suffix}")
        return path

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._file = self.file_for(trainer)
        self._file.parent.mkdir(parents=True, exist_ok=True)
        self._file.write_text("")

    def write_on_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        prediction: Any,
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        if self._file is None:
            raise RuntimeError("PredictionWriter: prediction has not started")
        with self._file.open("a") as handle:
            for record in prediction:
                handle.write(json.dumps(record) + "\n")
