"""Log-probabilities and entropy of a causal LM's next-token distributions.

Alignment is the caller's job: for a causal LM, ``logits[:, t]`` predicts ``input_ids[:, t + 1]``,
so pass ``logits[:, :-1]`` with ``input_ids[:, 1:]`` (the official code's
``logprobs_from_logits(lm_logits[:, :-1], input_ids[:, 1:])``). Results are in nats, computed in
at least float32 whatever the dtype of the logits (bf16 log-softmax is too coarse for PPO ratios).
"""

from __future__ import annotations

import torch
from torch import Tensor

from reft_lightning.rl.gae import masked_mean


def _at_least_float32(logits: Tensor) -> Tensor:
    return logits.to(torch.promote_types(logits.dtype, torch.float32))


def token_logprobs(logits: Tensor, tokens: Tensor) -> Tensor:
    """``log pi(tokens[b, t] | ...)`` from ``logits`` ``[B, T, V]`` and ``tokens`` ``[B, T]`` -> ``[B, T]``.

    Computed as ``logit[token] - logsumexp(logits)``, without materialising a full log-softmax.
    Differentiable with respect to ``logits``.
    """
    if logits.dim() != 3 or tokens.shape != logits.shape[:2]:
        shapes = f"{tuple(logits.shape)} and {tuple(tokens.shape)}"
        raise ValueError(f"expected logits [B, T, V] and tokens [B, T]; got {shapes}")
    logits = _at_least_float32(logits)
    chosen = torch.gather(logits, -1, tokens.long().unsqueeze(-1)).squeeze(-1)
    return chosen - torch.logsumexp(logits, dim=-1)


def token_entropy(logits: Tensor) -> Tensor:
    """Entropy (nats) ``H_t = -sum_v p_t(v) log p_t(v)`` of each next-token distribution:
    ``logits`` ``[B, T, V]`` -> ``[B, T]``, in at least float32."""
    log_p = torch.log_softmax(_at_least_float32(logits), dim=-1)
    return -(log_p.exp() * log_p).sum(dim=-1)


def masked_entropy(logits: Tensor, mask: Tensor) -> Tensor:
    """Mean :func:`token_entropy` over the masked positions, a scalar: ``logits`` ``[B, T, V]``,
    ``mask`` ``[B, T]``."""
    return masked_mean(token_entropy(logits), mask)
