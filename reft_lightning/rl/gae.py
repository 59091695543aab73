"""Generalised advantage estimation and masked statistics over response tokens.

Shapes: every per-token tensor is ``[B, T]`` (batch x positions), float. A *mask* is ``[B, T]``,
bool or float 0/1, 1 on response tokens; in each row the 1s form one contiguous run (the
response), preceded by prompt/padding positions and followed by padding after EOS, either of
which may be empty. A row may have no response token at all.

Masked-out positions never influence a result, whatever they hold (even ``inf`` or ``nan``).
No Lightning imports: cross-process reductions come in as a plain ``all_reduce`` callable.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

AllReduce = Callable[[Tensor], Tensor]
"""Sums a tensor over all processes and returns the sum (every process gets the same result).

For example ``lambda t: strategy.reduce(t, reduce_op="sum")`` in Lightning, or a function that calls
``torch.distributed.all_reduce(t)`` (in place) and returns ``t``. It receives small float64 tensors.
"""

WHITEN_EPS = 1e-8
"""Added to the variance before the square root, as in the official code (trl ``masked_whiten``)."""


def as_bool_mask(mask: Tensor, like: Tensor) -> Tensor:
    """Validate a 0/1 (or bool) mask of the same shape as ``like`` and return it as bool."""
    if mask.shape != like.shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} differs from tensor shape {tuple(like.shape)}")
    if mask.dtype == torch.bool:
        return mask
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError("mask must hold only 0 and 1")
    return mask != 0


def _masked_sum_and_count(x: Tensor, keep: Tensor, all_reduce: AllReduce | None) -> tuple[Tensor, Tensor]:
    """Sum of ``x`` over ``keep`` and the number of kept elements, float64, summed across processes."""
    stats = torch.stack([torch.where(keep, x, 0).sum(dtype=torch.float64), keep.sum(dtype=torch.float64)])
    if all_reduce is not None:
        stats = all_reduce(stats)
    return stats[0], stats[1]


def masked_mean(x: Tensor, mask: Tensor, all_reduce: AllReduce | None = None) -> Tensor:
    """Mean of ``x`` over the masked elements (scalar, dtype of ``x``); 0 if there are none.

    With ``all_reduce`` the mean is over the masked elements of every process.
    """
    total, count = _masked_sum_and_count(x, as_bool_mask(mask, x), all_reduce)
    return (total / count.clamp(min=1)).to(x.dtype)


def _masked_mean_and_var(
    x: Tensor, keep: Tensor, unbiased: bool, all_reduce: AllReduce | None
) -> tuple[Tensor, Tensor]:
    """Float64 mean and variance over ``keep`` (two passes, so no cancellation); var 0 if undefined."""
    total, count = _masked_sum_and_count(x, keep, all_reduce)
    mean = total / count.clamp(min=1)
    squares, _ = _masked_sum_and_count((x.double() - mean) ** 2, keep, all_reduce)
    denominator = count - 1 if unbiased else count
    var = torch.where(denominator > 0, squares / denominator.clamp(min=1), 0)
    return mean, var


def masked_var(x: Tensor, mask: Tensor, unbiased: bool = True, all_reduce: AllReduce | None = None) -> Tensor:
    """Variance of ``x`` over the masked elements (scalar, dtype of ``x``).

    ``unbiased`` divides by ``n - 1`` (Bessel), as trl's ``masked_var`` used by the official code.
    Returns 0 when it is undefined (``n <= 1`` unbiased, ``n == 0`` otherwise) instead of raising.
    """
    _, var = _masked_mean_and_var(x, as_bool_mask(mask, x), unbiased, all_reduce)
    return var.to(x.dtype)


def masked_whiten(
    x: Tensor, mask: Tensor, shift_mean: bool = False, all_reduce: AllReduce | None = None
) -> Tensor:
    """Whiten ``x`` over its masked elements: ``(x - mean) / sqrt(var + 1e-8)``, 0 where masked out.

    ``mean`` and the unbiased ``(n - 1)`` ``var`` are taken over the masked elements, of all
    processes when ``all_reduce`` is given (the official code's ``allgather_masked_whiten``, computed
    from global sums instead of gathering every value). ``shift_mean`` adds the mean back (the
    official default for advantages is False). Output: same shape and dtype as ``x``.
    """
    keep = as_bool_mask(mask, x)
    mean, var = _masked_mean_and_var(x, keep, True, all_reduce)
    whitened = (x.double() - mean) * torch.rsqrt(var + WHITEN_EPS)
    if shift_mean:
        whitened = whitened + mean
    return torch.where(keep, whitened, 0).to(x.dtype)


def _check_contiguous(keep: Tensor) -> None:
    """Raise unless the 1s of every row of ``keep`` form at most one contiguous run."""
    starts = keep[:, 0].long() + (keep[:, 1:] & ~keep[:, :-1]).sum(dim=1)
    if bool((starts > 1).any()):
        raise ValueError("each mask row must be one contiguous run of response tokens")


def compute_gae(
    rewards: Tensor, values: Tensor, mask: Tensor, gamma: float = 1.0, lam: float = 0.95
) -> tuple[Tensor, Tensor]:
    """GAE advantages and lambda-returns over the response tokens (Schulman et al. 2016, eq. 16).

    ``delta_t = r_t + gamma * V_{t+1} - V_t`` with ``V_{t+1} = 0`` past the last response token,
    ``A_t = sum_l (gamma * lam)^l * delta_{t+l}`` (within the response) and ``R_t = A_t + V_t``.

    Args:
        rewards: ``[B, T]`` per-token rewards (KL penalty plus the terminal score, see
            :func:`reft_lightning.rl.shaping.shape_rewards`).
        values: ``[B, T]`` value estimates ``V(s_t)`` from the no-grad rollout forward pass.
        mask: ``[B, T]`` response mask (one contiguous run per row; may be empty).
        gamma: TD discount; 1.0 in ReFT (the paper's text calls it lambda, the code ``gamma``).
        lam: GAE lambda; 0.95 in ReFT.

    Returns:
        ``(advantages, returns)``, both ``[B, T]``, detached, 0 where ``mask`` is 0.
    """
    if rewards.dim() != 2 or values.shape != rewards.shape:
        raise ValueError(f"rewards and values must both be [B, T]; got {rewards.shape} and {values.shape}")
    keep = as_bool_mask(mask, rewards)
    _check_contiguous(keep)
    dtype = torch.promote_types(rewards.dtype, values.dtype)
    r = torch.where(keep, rewards.detach().to(dtype), 0)
    v = torch.where(keep, values.detach().to(dtype), 0)
    running = torch.zeros_like(r[:, 0])
    next_value = torch.zeros_like(r[:, 0])
    columns = []
    for t in reversed(range(r.shape[1])):
        delta = r[:, t] + gamma * next_value - v[:, t]
        running = torch.where(keep[:, t], delta + gamma * lam * running, 0)
        columns.append(running)
        next_value = v[:, t]
    advantages = torch.stack(columns[::-1], dim=1)
    return advantages, advantages + v
