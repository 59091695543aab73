"""A callback ``bench/memory_options.py`` names in its runs (``bench/`` is on ``PYTHONPATH`` there)."""

from __future__ import annotations

import json
import resource
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch.distributed.fsdp import CPUOffloadPolicy, FSDPModule, fully_shard


def _local_bytes(tensors: Any) -> int:
    """Bytes this process holds of ``tensors`` (a sharded DTensor counts its local shard only)."""
    return sum((t.to_local() if hasattr(t, "to_local") else t).nbytes for t in tensors)


def _offloaded(module: torch.nn.Module | None) -> bool:
    if not isinstance(module, FSDPModule):
        return False
    return isinstance(fully_shard.state(module)._fsdp_param_group.offload_policy, CPUOffloadPolicy)


class TensorMemory(Callback):
    """After the last training batch, write to ``out`` (global rank 0) the largest over the processes
    of: the bytes each holds of the policy, reference, value model and value head weights, of its
    trainable weights' gradients (the same size as those weights: the optimizer steps on them), of
    the AdamW states, and the peak resident set size (``ru_maxrss``). An offloaded reference counts as
    host memory (``reference_host``), not accelerator memory."""

    def __init__(self, out: str) -> None:
        self.out = Path(out)
        self.record: dict[str, float] = {}

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:  # fmt: skip
        models = {
            name: getattr(pl_module, name, None)
            for name in ("model", "reference", "value_model", "value_head")
        }
        record = {name: _local_bytes(m.parameters()) if m is not None else 0 for name, m in models.items()}
        if _offloaded(models["reference"]):
            record["reference_host"], record["reference"] = record["reference"], 0
        trainable = [p for m in models.values() if m is not None for p in m.parameters() if p.requires_grad]
        record["gradients"] = _local_bytes(trainable)
        optimizers = trainer.optimizers
        record["adam_states"] = _local_bytes(
            v
            for o in optimizers
            for state in o.state.values()
            for v in state.values()
            if torch.is_tensor(v) and v.dim()
        )
        record["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self.record = record

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        keys = sorted(self.record)
        values = torch.tensor([float(self.record[k]) for k in keys], dtype=torch.float64)
        values = trainer.strategy.reduce(values.to(pl_module.device), reduce_op="max")
        if trainer.is_global_zero:
            result = {k: float(v) for k, v in zip(keys, values.cpu())}
            self.out.write_text(json.dumps({**result, "processes": trainer.world_size}))
