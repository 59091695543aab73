"""Step 5 of a ReFT iteration: the configured estimator's advantages and returns, whitened over all
response tokens of all processes, with the raw statistics for logging."""

from __future__ import annotations

from collections.abc import Callable

import torch

from reft_lightning.rl.estimators import AdvantageEstimator, AdvantageInputs
from reft_lightning.rl.gae import masked_mean, masked_var, masked_whiten
from reft_lightning.stages.ppo_args import PPOArgs


def estimate_advantages(
    estimator: AdvantageEstimator,
    ppo: PPOArgs,
    kl_coef: float,
    rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    scores: torch.Tensor,
    kl: torch.Tensor,
    all_reduce_sum: Callable[[torch.Tensor], torch.Tensor],
    keep: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """Advantages ``[N, R]``, returns ``[N, R]`` and the raw (pre-whitening) advantage and return
    statistics (``train/advantage_mean``, ``train/advantage_std``, ``train/return_mean``).

    ``estimator`` is ``rl/estimators.py``'s (GAE in the spec, or a group baseline); ``values`` are
    passed to it only when it trains a critic, and without one the returns are zeros (no value
    targets). ``keep`` (``[N]`` bool, ``skip_uniform_groups``): only the kept sequences enter the
    whitening statistics, and the others get advantage 0 (the returns keep every sequence).
    ``all_reduce_sum`` sums a tensor over the processes (the whitening statistics are global).
    """
    advantages, returns = estimator.estimate(
        AdvantageInputs(
            rewards, values if estimator.needs_critic else None, mask, scores, kl, kl_coef,
            ppo.num_samples, ppo.gamma, ppo.lam,
        )
    )  # fmt: skip
    if returns is None:
        returns = torch.zeros_like(values)
    stats = {
        "train/advantage_mean": float(masked_mean(advantages, mask)),
        "train/advantage_std": float(masked_var(advantages, mask).sqrt()),
        "train/return_mean": float(masked_mean(returns, mask)),
    }
    if keep is not None:
        mask = mask * keep.unsqueeze(1).to(mask.dtype)
        advantages = torch.where(mask.bool(), advantages, 0)
    if ppo.whiten_advantages:
        advantages = masked_whiten(advantages, mask, all_reduce=all_reduce_sum)
    return advantages, returns, stats
