"""Critic-free, group-baseline advantages for ``num_samples > 1`` completions per question.

Not part of ReFT (one sample per question, GAE with a learned value); offered as options:

- ``"grpo"``: ``A_i = (s_i - mean_g) / (std_g + eps)`` with the unbiased standard deviation of the
  scores of the question's group g (Shao et al. 2024, DeepSeekMath, outcome supervision).
- ``"rloo"``: ``A_i = s_i - mean_{j != i} s_j``, the leave-one-out baseline (Kool et al. 2019;
  Ahmadian et al. 2024).

A group of one sample has no baseline: its advantage is 0 under both methods.
:func:`informative_groups` finds the groups whose scores are all equal (DAPO's filter, Yu et al. 2025).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from reft_lightning.rl.gae import as_bool_mask

GroupMethod = Literal["grpo", "rloo"]


def group_advantages(
    scores: Tensor, group_ids: Tensor | None = None, method: GroupMethod = "grpo", eps: float = 1e-4
) -> Tensor:
    """Per-sequence advantages from terminal scores and a per-question baseline.

    Args:
        scores: ``[Q, K]`` (K samples for each of Q questions; ``group_ids`` must be None) or ``[B]``
            with ``group_ids``.
        group_ids: ``[B]`` integer question ids (any values; groups may differ in size).
        method: ``"grpo"`` or ``"rloo"`` (see the module docstring).
        eps: added to the group standard deviation (GRPO only).

    Returns:
        Advantages with the shape and dtype of ``scores``, detached.
    """
    if scores.dim() == 2 and group_ids is None:
        groups = torch.arange(scores.shape[0], device=scores.device).repeat_interleave(scores.shape[1])
    elif scores.dim() == 1 and group_ids is not None and group_ids.shape == scores.shape:
        groups = torch.unique(group_ids, return_inverse=True)[1]
    else:
        raise ValueError("pass scores [Q, K] without group_ids, or scores [B] with group_ids [B]")
    flat = scores.detach().reshape(-1).double()
    n_groups = int(groups.max()) + 1 if flat.numel() else 0
    count = flat.new_zeros(n_groups).index_add_(0, groups, torch.ones_like(flat))[groups]
    total = flat.new_zeros(n_groups).index_add_(0, groups, flat)[groups]
    has_baseline = count > 1
    if method == "rloo":
        advantages = flat - (total - flat) / (count - 1).clamp(min=1)
    elif method == "grpo":
        centered = flat - total / count
        squares = flat.new_zeros(n_groups).index_add_(0, groups, centered**2)[groups]
        advantages = centered / ((squares / (count - 1).clamp(min=1)).sqrt() + eps)
    else:
        raise ValueError(f"unknown group advantage method {method!r}; expected 'grpo' or 'rloo'")
    return torch.where(has_baseline, advantages, 0).to(scores.dtype).reshape(scores.shape)


def broadcast_to_tokens(sequence_advantages: Tensor, mask: Tensor) -> Tensor:
    """Give every response token its sequence's advantage: ``[B]``, mask ``[B, T]`` -> ``[B, T]``.

    Positions outside the mask get 0.
    """
    keep = as_bool_mask(mask, mask)
    if sequence_advantages.shape != keep.shape[:1]:
        shape = tuple(sequence_advantages.shape)
        raise ValueError(f"expected [B] = [{keep.shape[0]}] advantages, got {shape}")
    return torch.where(keep, sequence_advantages.unsqueeze(1), 0)


def informative_groups(scores: Tensor, group_size: int | None = None, atol: float = 1e-6) -> Tensor:
    """Which sequences belong to a group whose scores are not all equal (DAPO's dynamic-sampling test).

    A group (the K samples of one question) whose scores are all equal has no learning signal for
    a group baseline: every sample is as good as the others. Scores count as equal when the
    group's spread ``max - min`` is at most ``atol``, so ``0.1`` and ``0.3 - 0.2`` are equal. A
    group with a NaN score counts as uniform (its spread is not ``> atol``).

    Args:
        scores: ``[Q, K]`` (``group_size`` must be None) or ``[Q * K]`` with ``group_size = K``,
            the samples of each question consecutive (as ``repeat_interleave`` lays them out).
        group_size: ``K`` for flat ``scores``.
        atol: the largest spread still counted as uniform.

    Returns:
        ``[Q * K]`` bool: True for every sequence of a group with differing scores.
    """
    if scores.dim() == 2 and group_size is None:
        grouped = scores
    elif scores.dim() == 1 and group_size is not None and group_size >= 1:
        if scores.numel() % group_size:
            raise ValueError(f"{scores.numel()} scores do not split into groups of {group_size}")
        grouped = scores.reshape(-1, group_size)
    else:
        raise ValueError("pass scores [Q, K] without group_size, or scores [Q * K] with group_size K")
    if grouped.shape[1] < 1:
        raise ValueError("groups must hold at least one sample")
    grouped = grouped.detach()
    spread = grouped.amax(dim=1) - grouped.amin(dim=1)
    return (spread > atol).repeat_interleave(grouped.shape[1])
