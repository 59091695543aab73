"""Optimizer and learning-rate schedule shared by the stages (AdamW + warm-up, then decay)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import torch


@dataclass(frozen=True)
class OptimizerArgs:
    """AdamW and its schedule. Defaults: the spec's SFT warm-up (lr 1e-5, linear, 10% warm-up)."""

    lr: float = 1e-5
    """Peak learning rate."""
    weight_decay: float = 0.0
    """Decoupled weight decay (spec: 0)."""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW betas."""
    eps: float = 1e-8
    """AdamW epsilon."""
    schedule: Literal["linear", "cosine", "constant"] = "linear"
    """Shape after warm-up: linear or cosine decay to ``min_lr_ratio * lr``, or constant."""
    warmup_ratio: float = 0.1
    """Fraction of all optimizer steps spent warming up linearly from 0."""
    min_lr_ratio: float = 0.0
    """Final learning rate as a fraction of ``lr`` (decaying schedules)."""
    fused: bool = False
    """AdamW's fused kernel (``torch.optim.AdamW(fused=True)``: one kernel for all parameters, the
    fast choice on CUDA); ``false``: torch's default (``foreach`` on CUDA, a for-loop on CPU). The
    same update up to float rounding; measured in docs/results/performance.md."""

    def __post_init__(self) -> None:
        checks = {
            "lr": self.lr > 0,
            "eps": self.eps > 0,
            "weight_decay": self.weight_decay >= 0,
            "warmup_ratio": 0 <= self.warmup_ratio < 1,
            "min_lr_ratio": 0 <= self.min_lr_ratio <= 1,
            "betas": all(0 <= b < 1 for b in self.betas),
        }
        wrong = [key for key, ok in checks.items() if not ok]
        if wrong:
            values = ", ".join(f"{key}={getattr(self, key)!r}" for key in wrong)
            raise ValueError(
                f"optimizer: {values} out of range (lr and eps > 0, weight_decay >= 0, "
                f"0 <= warmup_ratio < 1, 0 <= min_lr_ratio <= 1, 0 <= betas < 1)"
            )


def lr_factor(step: int, total_steps: int, args: OptimizerArgs) -> float:
    """Multiplier of the peak lr at optimizer step ``step`` (0-based) of ``total_steps``.

    Ours, not ``transformers.get_scheduler``: that warm-up gives step 0 a zero lr and its linear
    decay has no floor; this one is what every published run in docs/results used.
    """
    warmup = int(args.warmup_ratio * total_steps)
    if step < warmup:
        return (step + 1) / warmup
    if args.schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    shape = 1.0 - progress if args.schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))
    return args.min_lr_ratio + (1.0 - args.min_lr_ratio) * shape


def build_optimizer(
    parameters: Iterable[torch.nn.Parameter] | Iterable[dict[str, Any]], args: OptimizerArgs, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over ``parameters`` (or parameter groups, which may set their own ``lr``) and a per-step
    LambdaLR following :func:`lr_factor`, applied to every group's peak lr."""
    optimizer = torch.optim.AdamW(
        parameters, lr=args.lr, betas=args.betas, eps=args.eps, weight_decay=args.weight_decay,
        fused=args.fused or None,
    )  # fmt: skip
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, total_steps, args))
    return optimizer, scheduler


def lightning_optimizers(
    parameters: Iterable[torch.nn.Parameter] | list[dict[str, Any]], args: OptimizerArgs, total_steps: int
) -> dict[str, Any]:
    """:func:`build_optimizer`'s pair as ``configure_optimizers`` returns it (the schedule steps with
    every optimizer step)."""
    optimizer, scheduler = build_optimizer(parameters, args, total_steps)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
