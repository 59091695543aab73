"""Optimizer steps with a non-finite gradient are skipped, counted, and stop the run when they persist.

The stages ask :meth:`NonFiniteGuard.allow_step` with the total gradient norm just before
``optimizer.step()``, through ``GuardedOptimizerSteps.guard_optimizer_step`` (``stages/guarded.py``,
which makes the processes agree): stages that optimise automatically from
``on_before_optimizer_step`` (after gradients are synchronised, before clipping), ReFT in every PPO
minibatch with the norm its clipping computed.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import torch


class NonFiniteTrainingError(RuntimeError):
    """Too many consecutive optimizer steps had a non-finite gradient."""


@dataclass
class NonFiniteGuard:
    """Counts skipped steps; the counts are saved in checkpoints (``state_dict`` / ``load_state_dict``).

    Args:
        max_consecutive: stop after this many consecutive skipped steps (the config key
            ``model.init_args.max_nonfinite_steps``); 0 stops at the first.
    """

    max_consecutive: int = 10
    skipped: int = 0
    """Optimizer steps skipped since the run started (resumes included)."""
    consecutive: int = 0
    """Skipped steps since the last step taken."""

    def allow_step(
        self,
        grad_norm: float,
        parameters: Iterable[torch.nn.Parameter],
        step: int,
        clear: bool = True,
    ) -> bool:
        """Whether the optimizer may step; when the gradient norm is ``nan`` or ``inf`` it may not.

        On a skip the gradients of ``parameters`` are set to ``None`` when ``clear`` (AdamW then
        leaves those weights and their moments as they are; pass ``clear=False`` where a gradient
        scaler skips the step itself), the skip is counted, the first one warns, and the
        ``max_consecutive + 1``-th consecutive one raises :class:`NonFiniteTrainingError`.

        Args:
            grad_norm: total L2 norm of the gradients.
            parameters: the parameters the optimizer updates.
            step: the optimizer step about to be taken (for the messages).
        """
        if math.isfinite(grad_norm):
            self.consecutive = 0
            return True
        if clear:
            for parameter in parameters:
                parameter.grad = None
        self.skipped += 1
        self.consecutive += 1
        if self.consecutive > self.max_consecutive:
            raise NonFiniteTrainingError(self._stop_message(step))
        if self.skipped == 1:
            warnings.warn(
                f"optimizer step {step} skipped: the gradient norm is {grad_norm} (logged as "
                "train/skipped_updates; the run stops after model.init_args.max_nonfinite_steps="
                f"{self.max_consecutive} in a row)",
                RuntimeWarning,
                stacklevel=2,
            )
        return False

    def _stop_message(self, step: int) -> str:
        return (
            f"stopping at optimizer step {step}: {self.consecutive} consecutive steps had a nan or inf "
            f"gradient and were skipped (model.init_args.max_nonfinite_steps={self.max_consecutive}). The "
            "weights are those of the last finite step. Likely causes: a learning rate too high for this "
            "model (model.init_args.optimizer.lr), which diverges the loss; float16 overflow "
            "(model.init_args.dtype, trainer.precision: use float32 or bfloat16); or batches whose "
            "loss has no target token (check the data module's max length settings)"
        )

    def state_dict(self) -> dict[str, int]:
        return {"skipped": self.skipped, "consecutive": self.consecutive}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.skipped, self.consecutive = int(state["skipped"]), int(state["consecutive"])
