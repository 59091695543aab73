"""A callback ``bench/gpu_smoke.sh`` names in its runs (``bench/`` is on ``PYTHONPATH`` there)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback


class PeakMemoryAndThroughput(Callback):
    """At the end of training, write ``{peak_gib, tokens_per_s, seconds, steps}`` to ``out`` (rank 0).

    Tokens are the batch's attention-mask ones (SFT: prompt and target; ReFT: the questions, whose
    generated tokens ReFT logs itself as ``train/response_tokens_per_s``), summed over all processes;
    the clock starts after the first batch, so start-up and compilation are not counted.
    """

    def __init__(self, out: str) -> None:
        self.out = Path(out)
        self.tokens, self.steps, self._started = 0, 0, 0.0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:  # fmt: skip
        mask = batch.get("attention_mask", batch.get("prompt_mask"))
        if self.steps == 0:
            self._started = time.perf_counter()
        else:
            self.tokens += int(trainer.strategy.reduce(mask.sum().float(), reduce_op="sum"))
        self.steps += 1

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        seconds = time.perf_counter() - self._started
        peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
        peak = float(trainer.strategy.reduce(torch.tensor(peak, device=pl_module.device), reduce_op="max"))
        if trainer.is_global_zero:
            record = {"peak_gib": peak, "tokens_per_s": self.tokens / max(seconds, 1e-9),
                      "seconds": seconds, "steps": self.steps}  # fmt: skip
            self.out.write_text(json.dumps(record))
