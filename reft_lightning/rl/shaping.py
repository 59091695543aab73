"""The KL-shaped per-token reward of ReFT (paper section 3, ``r_total``; official ``rollout()``).

``r_t = -beta * KL_t`` on every response token, plus the terminal score on the last response
token (the token that emits EOS, or the last generated token if there was none).
"""

from __future__ import annotations

import torch
from torch import Tensor

from reft_lightning.rl.gae import as_bool_mask


def last_response_index(mask: Tensor) -> Tensor:
    """Index of the last response token of each row, ``[B]`` long; -1 for rows with no response."""
    keep = as_bool_mask(mask, mask)
    positions = torch.arange(1, keep.shape[1] + 1, device=keep.device)
    return (keep.long() * positions).max(dim=1).values - 1


def shape_rewards(scores: Tensor, kl: Tensor, mask: Tensor, beta: float) -> Tensor:
    """Per-token rewards ``[B, T]`` from terminal scores and a per-token KL estimate.

    Args:
        scores: ``[B]`` terminal scores (ReFT: 1 correct, 0.1 wrong answer, 0 none).
        kl: ``[B, T]`` per-token KL estimate (:func:`reft_lightning.rl.kl.kl_estimate`); detached here.
        mask: ``[B, T]`` response mask, 1 on generated tokens including EOS.
        beta: KL coefficient.

    Returns:
        ``[B, T]`` rewards in the dtype of ``kl``, 0 outside the response. A row with no response
        token gets no reward at all (its score has no token to sit on).
    """
    keep = as_bool_mask(mask, kl)
    if scores.shape != kl.shape[:1]:
        raise ValueError(f"scores must be [B] = [{kl.shape[0]}], got {tuple(scores.shape)}")
    rewards = torch.where(keep, -beta * kl.detach(), 0)
    last = last_response_index(keep)
    rows = torch.nonzero(last >= 0).squeeze(1)
    rewards[rows, last[rows]] += scores.detach().to(rewards.dtype)[rows]
    return rewards
