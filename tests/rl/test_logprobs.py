"""token_logprobs and masked_entropy against plain-loop log-sum-exp references."""

from __future__ import annotations

import math

import pytest
import torch

from reft_lightning.rl.logprobs import masked_entropy, token_logprobs


def log_softmax_row(logits: list[float]) -> list[float]:
    top = max(logits)
    log_z = top + math.log(sum(math.exp(v - top) for v in logits))
    return [v - log_z for v in logits]


def test_token_logprobs_match_reference() -> None:
    torch.manual_seed(0)
    logits = 4.0 * torch.randn(3, 5, 11, dtype=torch.float64)
    tokens = torch.randint(0, 11, (3, 5))
    actual = token_logprobs(logits, tokens)
    for b in range(3):
        for t in range(5):
            expected = log_softmax_row(logits[b, t].tolist())[int(tokens[b, t])]
            assert actual[b, t].item() == pytest.approx(expected, rel=1e-12)


def test_low_precision_logits_are_upcast_and_gradients_flow() -> None:
    torch.manual_seed(1)
    logits = torch.randn(2, 3, 7).to(torch.bfloat16).requires_grad_(True)
    tokens = torch.randint(0, 7, (2, 3))
    result = token_logprobs(logits, tokens)
    assert result.dtype == torch.float32
    expected = token_logprobs(logits.detach().float(), tokens)
    torch.testing.assert_close(result.detach(), expected)
    result.sum().backward()
    assert logits.grad is not None and bool(logits.grad.abs().sum() > 0)


def test_masked_entropy_matches_reference() -> None:
    torch.manual_seed(2)
    logits = torch.randn(2, 4, 6, dtype=torch.float64)
    mask = torch.tensor([[0, 1, 1, 0], [1, 1, 1, 1]])
    entropies = []
    for b in range(2):
        for t in range(4):
            if mask[b, t]:
                log_p = log_softmax_row(logits[b, t].tolist())
                entropies.append(-sum(math.exp(lp) * lp for lp in log_p))
    assert masked_entropy(logits, mask).item() == pytest.approx(sum(entropies) / len(entropies))
    uniform = torch.zeros(1, 2, 8)
    assert masked_entropy(uniform, torch.ones(1, 2)).item() == pytest.approx(math.log(8))


def test_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="logits"):
        token_logprobs(torch.zeros(2, 3, 4), torch.zeros(2, 4, dtype=torch.long))
