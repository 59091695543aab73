"""Per-token KL estimators and the KL coefficient (beta) controllers.

Log-probabilities are natural-log (nats) of the sampled tokens, ``[B, T]``. The estimators
follow Schulman, "Approximating KL Divergence" (2020), for ``KL(pi || pi_ref)`` with samples
drawn from ``pi``: with ``log_r = logp_ref - logp``,

- ``k1 = -log_r = logp - logp_ref``  (unbiased, can be negative; ReFT's choice)
- ``k2 = 0.5 * log_r ** 2``          (biased, always >= 0)
- ``k3 = exp(log_r) - 1 - log_r``    (unbiased, always >= 0)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Literal

import torch
from torch import Tensor

KLKind = Literal["k1", "k2", "k3"]


def kl_estimate(logp: Tensor, logp_ref: Tensor, kind: KLKind = "k1") -> Tensor:
    """Per-token estimate of ``KL(pi || pi_ref)`` from sampled-token log-probs, same shape as ``logp``.

    Not masked: apply the response mask where it is used (e.g. in
    :func:`reft_lightning.rl.shaping.shape_rewards`). Differentiable in both arguments.
    """
    if logp.shape != logp_ref.shape:
        raise ValueError(f"logp {tuple(logp.shape)} and logp_ref {tuple(logp_ref.shape)} differ in shape")
    log_r = logp_ref - logp
    if kind == "k1":
        return -log_r
    if kind == "k2":
        return 0.5 * log_r**2
    if kind == "k3":
        return torch.expm1(log_r) - log_r
    raise ValueError(f"unknown KL estimator {kind!r}; expected 'k1', 'k2' or 'k3'")


class KLController(ABC):
    """The KL coefficient beta: read ``value``, call ``update`` once per rollout batch.

    ``state_dict``/``load_state_dict`` carry the current beta through checkpoints.
    """

    def __init__(self, value: float) -> None:
        if value < 0:
            raise ValueError(f"KL coefficient must be >= 0, got {value}")
        self.value = float(value)

    @abstractmethod
    def update(self, current_kl: float, n_steps: int) -> None:
        """Adapt beta after a rollout batch with mean sequence KL ``current_kl`` over ``n_steps`` samples."""

    def state_dict(self) -> dict[str, float]:
        return {"value": self.value}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.value = float(state["value"])


class FixedKLController(KLController):
    """Constant beta: ReFT's setting (0.01 P-CoT, 0.05 N-CoT, 0.01 MathQA-numeric)."""

    def update(self, current_kl: float, n_steps: int) -> None:
        """Beta stays fixed."""


class AdaptiveKLController(KLController):
    """Proportional controller of Ziegler et al. 2019 ("Fine-Tuning LMs from Human Preferences", 2.2).

    ``e = clip(KL / target - 1, -0.2, 0.2)``; ``beta <- beta * (1 + e * n_steps / horizon)``.
    ``target`` is in nats per sequence (the paper's KL_target); ``horizon`` in samples.
    Not part of ReFT (which keeps beta fixed); offered as an option.
    """

    def __init__(self, value: float, target: float, horizon: int) -> None:
        super().__init__(value)
        if target <= 0 or horizon <= 0:
            raise ValueError(f"target and horizon must be > 0, got {target} and {horizon}")
        self.target = float(target)
        self.horizon = int(horizon)

    def update(self, current_kl: float, n_steps: int) -> None:
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon
