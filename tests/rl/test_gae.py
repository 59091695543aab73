"""compute_gae against a float64 explicit-sum reference and a hand-worked example."""

from __future__ import annotations

import random

import pytest
import torch

from reft_lightning.rl.gae import compute_gae

from . import reference


@pytest.mark.parametrize(("gamma", "lam"), [(1.0, 0.95), (0.9, 0.8), (1.0, 1.0), (0.99, 0.0)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_reference_on_ragged_batches(seed: int, gamma: float, lam: float) -> None:
    rng = random.Random(seed)
    torch.manual_seed(seed)
    mask = reference.ragged_mask(rng, batch=10, length=24)
    rewards, values = torch.randn(10, 24), torch.randn(10, 24)

    adv, ret = compute_gae(rewards, values, mask, gamma=gamma, lam=lam)

    ref_adv, ref_ret = reference.gae(*map(reference.to_rows, (rewards, values, mask)), gamma, lam)
    torch.testing.assert_close(adv.double(), torch.tensor(ref_adv, dtype=torch.float64), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ret.double(), torch.tensor(ref_ret, dtype=torch.float64), rtol=1e-5, atol=1e-5)
    assert adv.dtype == ret.dtype == torch.float32


def test_hand_worked_example() -> None:
    # One prompt position, a 3-token response, then padding after EOS; gamma = 1, lambda = 0.5.
    # rewards r = (0, 0, 1) and values V = (0.5, 0.6, 0.8) on the response; V = 0 after it.
    #   delta_2 = 1 + 0   - 0.8 = 0.2        A_2 = 0.2                     R_2 = 0.2  + 0.8 = 1.0
    #   delta_1 = 0 + 0.8 - 0.6 = 0.2        A_1 = 0.2 + 0.5 * 0.2  = 0.3  R_1 = 0.3  + 0.6 = 0.9
    #   delta_0 = 0 + 0.6 - 0.5 = 0.1        A_0 = 0.1 + 0.5 * 0.3  = 0.25 R_0 = 0.25 + 0.5 = 0.75
    # The padding positions hold junk that must be ignored.
    rewards = torch.tensor([[7.0, 0.0, 0.0, 1.0, 9.0]], dtype=torch.float64)
    values = torch.tensor([[3.0, 0.5, 0.6, 0.8, 4.0]], dtype=torch.float64)
    mask = torch.tensor([[0, 1, 1, 1, 0]], dtype=torch.bool)

    adv, ret = compute_gae(rewards, values, mask, gamma=1.0, lam=0.5)

    torch.testing.assert_close(adv, torch.tensor([[0.0, 0.25, 0.3, 0.2, 0.0]], dtype=torch.float64))
    torch.testing.assert_close(ret, torch.tensor([[0.0, 0.75, 0.9, 1.0, 0.0]], dtype=torch.float64))


def test_masked_positions_are_ignored_even_if_not_finite() -> None:
    rng = random.Random(3)
    mask = reference.ragged_mask(rng, batch=8, length=16).bool()
    rewards, values = torch.randn(8, 16), torch.randn(8, 16)
    adv, ret = compute_gae(rewards, values, mask)

    junk_rewards = rewards.masked_fill(~mask, float("nan"))
    junk_values = values.masked_fill(~mask, float("inf"))
    junk_adv, junk_ret = compute_gae(junk_rewards, junk_values, mask)

    torch.testing.assert_close(junk_adv, adv)
    torch.testing.assert_close(junk_ret, ret)
    assert bool((adv[~mask] == 0).all()) and bool((ret[~mask] == 0).all())


def test_empty_rows_and_all_empty_batch_give_zeros() -> None:
    mask = torch.zeros(3, 6)
    adv, ret = compute_gae(torch.randn(3, 6), torch.randn(3, 6), mask)
    assert torch.equal(adv, torch.zeros(3, 6)) and torch.equal(ret, torch.zeros(3, 6))


def test_float_and_bool_masks_agree() -> None:
    mask = reference.ragged_mask(random.Random(4), batch=6, length=12)
    rewards, values = torch.randn(6, 12), torch.randn(6, 12)
    for a, b in zip(compute_gae(rewards, values, mask), compute_gae(rewards, values, mask.bool())):
        torch.testing.assert_close(a, b)


def test_outputs_are_detached() -> None:
    mask = torch.ones(2, 4)
    rewards = torch.randn(2, 4, requires_grad=True)
    values = torch.randn(2, 4, requires_grad=True)
    adv, ret = compute_gae(rewards, values, mask)
    assert not adv.requires_grad and not ret.requires_grad


@pytest.mark.parametrize(
    ("mask", "message"),
    [
        (torch.tensor([[1.0, 0.0, 1.0]]), "contiguous"),
        (torch.tensor([[0.0, 0.5, 1.0]]), "0 and 1"),
        (torch.ones(1, 4), "shape"),
    ],
)
def test_invalid_masks_raise(mask: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compute_gae(torch.zeros(1, 3), torch.zeros(1, 3), mask)
