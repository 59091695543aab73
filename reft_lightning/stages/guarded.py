"""The stages' optimizer-step hook: a step whose gradient is not finite on any process is skipped
(:class:`reft_lightning.stages.numeric_guard.NonFiniteGuard` counts the skips and stops the run)."""

from __future__ import annotations

import math

import lightning as L
import torch

from reft_lightning.models.sharding import whole
from reft_lightning.stages.numeric_guard import NonFiniteGuard


class GuardedOptimizerSteps(L.LightningModule):
    """A LightningModule whose optimizer steps are guarded; subclasses set :attr:`nonfinite_guard`
    in ``__init__`` and save its ``state_dict`` in their checkpoints."""

    nonfinite_guard: NonFiniteGuard
    """Skips optimizer steps whose gradient is not finite (see :meth:`guard_optimizer_step`)."""

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Automatic optimisation (SFT): guard the step Lightning is about to take, after the
        gradients are synchronised and before they are clipped. Stages that optimise manually call
        :meth:`guard_optimizer_step` with the norm their clipping computed (no second pass)."""
        if not self.automatic_optimization:
            return
        parameters = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        grad_norm = torch.nn.utils.get_total_norm([p.grad for p in parameters]) if parameters else 0.0
        self.guard_optimizer_step(grad_norm, parameters)

    def guard_optimizer_step(
        self, grad_norm: torch.Tensor | float, parameters: list[torch.nn.Parameter]
    ) -> None:
        """Skip the coming optimizer step if the gradient norm is not finite (:class:`NonFiniteGuard`)
        on any process, and log the skips.

        The processes agree (one all-reduce of a flag), so a step is skipped everywhere when only
        one process's gradient shard holds the ``nan``. Under a float16 gradient scaler, which skips
        such steps itself, the skip is only counted.
        """
        norm = whole(grad_norm).item() if isinstance(grad_norm, torch.Tensor) else grad_norm
        if not self.trainer.strategy.reduce_boolean_decision(math.isfinite(norm), all=True):
            norm = norm if not math.isfinite(norm) else math.nan
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)
        self.nonfinite_guard.allow_step(norm, parameters, self.trainer.global_step, clear=scaler is None)
        self.log("train/skipped_updates", float(self.nonfinite_guard.skipped))
