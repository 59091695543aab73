"""Independent float64 references in plain Python loops, and ragged test batches.

Nothing here is vectorised or shares code with ``reft_lightning.rl``: every formula is written
out element by element from its paper/official-code definition.
"""

from __future__ import annotations

import math
import random

import torch

Rows = list[list[float]]


def ragged_mask(rng: random.Random, batch: int, length: int) -> torch.Tensor:
    """A ``[batch, length]`` float 0/1 response mask cycling through the layouts met in practice.

    Row kinds: no response token at all; left-padded prompt then a response filling the row (no
    EOS, truncated); prompt, response ending in EOS, then padding; left-aligned response (no
    prompt positions) then padding; a one-token response.
    """
    rows = []
    for b in range(batch):
        kind = b % 5
        prompt = 0 if kind == 3 else rng.randint(1, length // 3)
        free = length - prompt
        response = {0: 0, 1: free, 4: 1}.get(kind, rng.randint(2, free))
        rows.append([0.0] * prompt + [1.0] * response + [0.0] * (free - response))
    rng.shuffle(rows)
    return torch.tensor(rows)


def response_span(mask_row: list[float]) -> list[int]:
    """Indices of the response tokens of one mask row."""
    return [t for t, m in enumerate(mask_row) if m == 1.0]


def gae(rewards: Rows, values: Rows, mask: Rows, gamma: float, lam: float) -> tuple[Rows, Rows]:
    """GAE written as the explicit sum A_t = sum_{k >= t} (gamma*lam)^(k-t) delta_k (no recursion)."""
    advantages, returns = [], []
    for r, v, m in zip(rewards, values, mask):
        span = response_span(m)
        adv_row, ret_row = [0.0] * len(m), [0.0] * len(m)
        deltas = {}
        for i, t in enumerate(span):
            next_value = v[span[i + 1]] if i + 1 < len(span) else 0.0
            deltas[t] = r[t] + gamma * next_value - v[t]
        for i, t in enumerate(span):
            adv_row[t] = sum((gamma * lam) ** (j - i) * deltas[span[j]] for j in range(i, len(span)))
            ret_row[t] = adv_row[t] + v[t]
        advantages.append(adv_row)
        returns.append(ret_row)
    return advantages, returns


def masked_values(x: Rows, mask: Rows) -> list[float]:
    return [xv for x_row, m_row in zip(x, mask) for xv, mv in zip(x_row, m_row) if mv == 1.0]


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def unbiased_var(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    mu = mean(values)
    return sum((v - mu) ** 2 for v in values) / (len(values) - 1)


def whiten(x: Rows, mask: Rows, shift_mean: bool) -> Rows:
    kept = masked_values(x, mask)
    mu, var = mean(kept), unbiased_var(kept)
    out = []
    for x_row, m_row in zip(x, mask):
        row = []
        for xv, mv in zip(x_row, m_row):
            w = (xv - mu) / math.sqrt(var + 1e-8) + (mu if shift_mean else 0.0)
            row.append(w if mv == 1.0 else 0.0)
        out.append(row)
    return out


def sequence_mean(token_losses: Rows, mask: Rows) -> float:
    """Sum over each row's response tokens / max(1, response length), then mean over rows."""
    per_row = []
    for loss_row, m_row in zip(token_losses, mask):
        total = sum(value for value, m in zip(loss_row, m_row) if m == 1.0)
        per_row.append(total / max(1, len(response_span(m_row))))
    return sum(per_row) / len(per_row)


def policy_token_losses(logp: Rows, old_logp: Rows, adv: Rows, mask: Rows, eps: float) -> Rows:
    out = []
    for lp_row, old_row, a_row, m_row in zip(logp, old_logp, adv, mask):
        row = []
        for lp, old, a, m in zip(lp_row, old_row, a_row, m_row):
            if m != 1.0:
                row.append(0.0)
                continue
            ratio = math.exp(lp - old)
            clipped_ratio = min(max(ratio, 1.0 - eps), 1.0 + eps)
            row.append(max(-a * ratio, -a * clipped_ratio))
        out.append(row)
    return out


def value_token_losses(values: Rows, old_values: Rows, returns: Rows, mask: Rows, clip: float) -> Rows:
    out = []
    for v_row, old_row, r_row, m_row in zip(values, old_values, returns, mask):
        row = []
        for v, old, ret, m in zip(v_row, old_row, r_row, m_row):
            clipped_v = min(max(v, old - clip), old + clip)
            row.append(0.5 * max((v - ret) ** 2, (clipped_v - ret) ** 2) if m == 1.0 else 0.0)
        out.append(row)
    return out


def to_rows(x: torch.Tensor) -> Rows:
    return x.double().tolist()
