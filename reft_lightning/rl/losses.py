"""PPO's clipped policy and value losses, reduced as the official ReFT code does.

All per-token inputs are ``[B, T]`` aligned with the response mask (1 on response tokens).
Reduction (:func:`sequence_mean`): token losses are summed per sequence, divided by that sequence's
response length (at least 1) and averaged over the batch, rows without response tokens counting as
0 (official ``train_rl_reft.py``). Only the current ``logp``/``values`` receive gradients; old
log-probs, old values, advantages and returns are treated as constants. Masked-out positions may
hold anything (even ``inf``/``nan``): they affect neither the loss nor its gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from reft_lightning.rl.gae import as_bool_mask, masked_mean, masked_var
from reft_lightning.rl.kl import kl_estimate


@dataclass(frozen=True)
class PolicyLossStats:
    """Detached scalar tensors diagnosing :func:`ppo_policy_loss`, means over response tokens."""

    clip_fraction: Tensor
    """Fraction of tokens where the clipped term is the larger loss (so their gradient is zero)."""
    approx_kl: Tensor
    """``(ratio - 1) - log(ratio)``: the k3 estimate of ``KL(pi_old || pi)`` (nats per token)."""
    mean_ratio: Tensor
    """Mean of ``pi / pi_old``."""


@dataclass(frozen=True)
class ValueLossStats:
    """Detached scalar tensors diagnosing :func:`ppo_value_loss`, over response tokens."""

    clip_fraction: Tensor
    """Fraction of tokens where the clipped squared error is the larger one."""
    explained_variance: Tensor
    """``1 - Var(R - V) / Var(R)``: 1 for a perfect value function, <= 0 for a useless one."""


def sequence_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Scalar: ``mean_b( sum_t mask[b, t] * x[b, t] / max(1, sum_t mask[b, t]) )`` for ``[B, T]`` inputs."""
    keep = as_bool_mask(mask, x)
    per_sequence = torch.where(keep, x, 0).sum(dim=1) / keep.sum(dim=1).clamp(min=1)
    return per_sequence.mean()


def ppo_policy_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    clip_range: float = 0.2,
    kl_mask: Tensor | None = None,
) -> tuple[Tensor, PolicyLossStats]:
    """Clipped surrogate policy loss (Schulman et al. 2017, eq. 7, negated to minimise).

    Per token, with ``ratio = exp(logp - old_logp)``:
    ``loss_t = max(-A_t * ratio, -A_t * clip(ratio, 1 - clip_range, 1 + clip_range))``.

    Args:
        logp: ``[B, T]`` log-probs of the sampled tokens under the current policy (with grad).
        old_logp: ``[B, T]`` log-probs from the rollout forward pass.
        advantages: ``[B, T]`` (whitened) advantages.
        mask: ``[B, T]`` response mask.
        clip_range: epsilon, 0.2 in ReFT.
        kl_mask: ``[B, T]`` tokens over which ``approx_kl`` is measured; ``None``: ``mask`` (a
            caller that leaves sequences out of the loss still measures how far the policy moved
            on all of them).

    Returns:
        The scalar loss (reduced by :func:`sequence_mean`) and :class:`PolicyLossStats`.
    """
    keep = as_bool_mask(mask, logp)
    log_ratio = torch.where(keep, logp - old_logp.detach(), 0)
    ratio = log_ratio.exp()
    advantages = torch.where(keep, advantages.detach(), 0)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip_range, 1.0 + clip_range)
    loss = sequence_mean(torch.maximum(unclipped, clipped), keep)
    with torch.no_grad():
        stats = PolicyLossStats(
            clip_fraction=masked_mean((clipped > unclipped).to(ratio.dtype), keep),
            approx_kl=masked_mean(
                kl_estimate(old_logp, logp, "k3"), keep if kl_mask is None else as_bool_mask(kl_mask, logp)
            ),
            mean_ratio=masked_mean(ratio, keep),
        )
    return loss, stats


def ppo_value_loss(
    values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor, clip_range: float = 0.2
) -> tuple[Tensor, ValueLossStats]:
    """Clipped value loss of the official ReFT code (and trl's PPO), halved squared error.

    Per token: ``0.5 * max((V - R)^2, (clip(V, V_old - c, V_old + c) - R)^2)`` with ``c = clip_range``.

    Args:
        values: ``[B, T]`` current value predictions (with grad).
        old_values: ``[B, T]`` values from the rollout forward pass.
        returns: ``[B, T]`` GAE returns ``R = A + V_old`` (before any whitening of ``A``).
        mask: ``[B, T]`` response mask.
        clip_range: ``c``, 0.2 in ReFT.

    Returns:
        The scalar loss (reduced by :func:`sequence_mean`; ReFT weights it by ``vf_coef = 5``) and
        :class:`ValueLossStats`.
    """
    keep = as_bool_mask(mask, values)
    values = torch.where(keep, values, 0)
    old_values = torch.where(keep, old_values.detach(), 0)
    returns = torch.where(keep, returns.detach(), 0)
    clipped_values = old_values + (values - old_values).clamp(-clip_range, clip_range)
    unclipped_error = (values - returns) ** 2
    clipped_error = (clipped_values - returns) ** 2
    token_loss = 0.5 * torch.maximum(unclipped_error, clipped_error)
    loss = sequence_mean(token_loss, keep)
    with torch.no_grad():
        return_var = masked_var(returns, keep)
        stats = ValueLossStats(
            clip_fraction=masked_mean((clipped_error > unclipped_error).to(values.dtype), keep),
            explained_variance=1.0 - masked_var(returns - values, keep) / (return_var + 1e-8),
        )
    return loss, stats
