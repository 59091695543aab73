"""shape_rewards against a plain-loop reference."""

from __future__ import annotations

import random

import pytest
import torch

from reft_lightning.rl.shaping import last_response_index, shape_rewards

from . import reference


@pytest.mark.parametrize("beta", [0.05, 0.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_reference_on_ragged_batches(seed: int, beta: float) -> None:
    rng = random.Random(seed)
    torch.manual_seed(seed)
    mask = reference.ragged_mask(rng, batch=10, length=14)
    kl, scores = torch.randn(10, 14), torch.tensor([rng.choice([0.0, 0.1, 1.0]) for _ in range(10)])

    rewards = shape_rewards(scores, kl, mask, beta)

    expected = []
    for b, (kl_row, m_row) in enumerate(zip(reference.to_rows(kl), reference.to_rows(mask))):
        span = reference.response_span(m_row)
        row = [-beta * k if t in span else 0.0 for t, k in enumerate(kl_row)]
        if span:
            row[span[-1]] += float(scores[b])
        expected.append(row)
    torch.testing.assert_close(rewards.double(), torch.tensor(expected, dtype=torch.float64))


def test_score_lands_on_eos_token_or_last_token_and_is_dropped_without_response() -> None:
    # Row 0: response ends with EOS at position 2 (padding after). Row 1: truncated, runs to the end.
    # Row 2: no response token: no reward anywhere.
    mask = torch.tensor([[0, 1, 1, 0], [0, 0, 1, 1], [0, 0, 0, 0]], dtype=torch.bool)
    kl = torch.full((3, 4), 2.0, requires_grad=True)
    rewards = shape_rewards(torch.tensor([1.0, 0.1, 1.0]), kl, mask, beta=0.5)
    expected = torch.tensor([[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, -0.9], [0.0, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(rewards, expected)
    assert not rewards.requires_grad
    assert last_response_index(mask).tolist() == [2, 3, -1]


def test_scores_must_be_one_per_row() -> None:
    with pytest.raises(ValueError, match="scores"):
        shape_rewards(torch.zeros(2), torch.zeros(3, 4), torch.ones(3, 4), beta=0.1)
