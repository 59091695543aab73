"""PPO policy/value losses and their statistics against float64 references; where gradients flow."""

from __future__ import annotations

import math
import random

import pytest
import torch

from reft_lightning.rl.losses import ppo_policy_loss, ppo_value_loss, sequence_mean

from . import reference


def ragged_inputs(seed: int, batch: int = 10, length: int = 16) -> tuple[torch.Tensor, ...]:
    rng = random.Random(seed)
    torch.manual_seed(seed)
    mask = reference.ragged_mask(rng, batch, length)
    return mask, *(torch.randn(batch, length, dtype=torch.float64) for _ in range(3))


@pytest.mark.parametrize("eps", [0.2, 0.1])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_policy_loss_and_stats_match_reference(seed: int, eps: float) -> None:
    mask, adv, old_logp, noise = ragged_inputs(seed)
    logp = old_logp + 0.3 * noise  # ratios spread across both sides of the clip range

    loss, stats = ppo_policy_loss(logp, old_logp, adv, mask, clip_range=eps)

    rows = [reference.to_rows(t) for t in (logp, old_logp, adv, mask)]
    expected = reference.sequence_mean(reference.policy_token_losses(*rows, eps), rows[3])
    assert loss.item() == pytest.approx(expected, rel=1e-10)
    ratios, clipped, approx_kl = [], [], []
    for lp_row, old_row, a_row, m_row in zip(*rows):
        for lp, old, a, m in zip(lp_row, old_row, a_row, m_row):
            if m == 1.0:
                ratio = math.exp(lp - old)
                ratios.append(ratio)
                clipped.append(-a * min(max(ratio, 1 - eps), 1 + eps) > -a * ratio)
                approx_kl.append((ratio - 1) - math.log(ratio))
    assert 0 < sum(clipped) < len(clipped)
    assert stats.clip_fraction.item() == pytest.approx(sum(clipped) / len(clipped))
    assert stats.mean_ratio.item() == pytest.approx(reference.mean(ratios))
    assert stats.approx_kl.item() == pytest.approx(reference.mean(approx_kl))
    assert not any(s.requires_grad for s in (stats.clip_fraction, stats.approx_kl, stats.mean_ratio))


@pytest.mark.parametrize("clip", [0.2, 0.5])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_value_loss_and_stats_match_reference(seed: int, clip: float) -> None:
    mask, returns, old_values, noise = ragged_inputs(seed)
    values = old_values + 0.4 * noise

    loss, stats = ppo_value_loss(values, old_values, returns, mask, clip_range=clip)

    rows = [reference.to_rows(t) for t in (values, old_values, returns, mask)]
    expected = reference.sequence_mean(reference.value_token_losses(*rows, clip), rows[3])
    assert loss.item() == pytest.approx(expected, rel=1e-10)
    clipped, errors, kept_returns = [], [], []
    for v_row, old_row, r_row, m_row in zip(*rows):
        for v, old, ret, m in zip(v_row, old_row, r_row, m_row):
            if m == 1.0:
                clipped.append((min(max(v, old - clip), old + clip) - ret) ** 2 > (v - ret) ** 2)
                errors.append(ret - v)
                kept_returns.append(ret)
    assert 0 < sum(clipped) < len(clipped)
    assert stats.clip_fraction.item() == pytest.approx(sum(clipped) / len(clipped))
    expected_ev = 1 - reference.unbiased_var(errors) / (reference.unbiased_var(kept_returns) + 1e-8)
    assert stats.explained_variance.item() == pytest.approx(expected_ev, rel=1e-9)


def test_sequence_mean_weights_each_sequence_equally_and_counts_empty_rows() -> None:
    # Row 0: tokens 1, 2, 3 -> 6 / 3 = 2. Row 1: token 10 -> 10. Row 2: no response -> 0.
    x = torch.tensor([[1.0, 2.0, 3.0, 99.0], [-5.0, 10.0, 99.0, 99.0], [99.0, 99.0, 99.0, 99.0]])
    mask = torch.tensor([[1, 1, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]])
    assert sequence_mean(x, mask).item() == pytest.approx((2.0 + 10.0 + 0.0) / 3)


def test_policy_gradient_is_zero_on_the_clipped_side_only() -> None:
    # One row, four response tokens plus a masked-out junk position; old logp = 0, eps = 0.2.
    # token  A    ratio   unclipped -A*r   clipped -A*clip(r)   max picks   d loss / d logp = -A * r / 4
    #   0   +1    1.5        -1.5            -1.2               clipped     0
    #   1   +1    0.5        -0.5            -0.8               unclipped   -0.125
    #   2   -1    1.5        +1.5            +1.2               unclipped   +0.375
    #   3   -1    0.5        +0.5            +0.8               clipped     0
    ratios = torch.tensor([[1.5, 0.5, 1.5, 0.5, 1.0]], dtype=torch.float64)
    logp = ratios.log().clone()
    logp[0, 4] = float("inf")
    logp.requires_grad_(True)
    adv = torch.tensor([[1.0, 1.0, -1.0, -1.0, float("nan")]], dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 1, 0]])

    loss, stats = ppo_policy_loss(logp, torch.zeros_like(logp), adv, mask, clip_range=0.2)
    loss.backward()

    assert loss.item() == pytest.approx((-1.2 - 0.5 + 1.5 + 0.8) / 4)
    assert logp.grad is not None
    torch.testing.assert_close(logp.grad, torch.tensor([[0.0, -0.125, 0.375, 0.0, 0.0]], dtype=torch.float64))
    assert adv.grad is None
    assert stats.clip_fraction.item() == pytest.approx(0.5)


def test_value_gradient_is_zero_on_the_clipped_side_only() -> None:
    # Old value 0, return 1, clip 0.2 (clipped V lies in [-0.2, 0.2]); four response tokens.
    # token  V     clip(V)   (V-R)^2   (clip(V)-R)^2   max picks   d loss / dV = (V - R) / 4 if unclipped
    #   0   0.5     0.2       0.25        0.64         clipped     0
    #   1   1.5     0.2       0.25        0.64         clipped     0
    #   2   0.1     0.1       0.81        0.81         tie (both branches have slope V - R)  -0.225
    #   3  -0.5    -0.2       2.25        1.44         unclipped   -0.375
    values = torch.tensor([[0.5, 1.5, 0.1, -0.5, float("inf")]], dtype=torch.float64, requires_grad=True)
    returns = torch.tensor([[1.0, 1.0, 1.0, 1.0, float("nan")]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1, 0]])

    loss, stats = ppo_value_loss(values, torch.zeros_like(returns), returns, mask, clip_range=0.2)
    loss.backward()

    assert loss.item() == pytest.approx(0.5 * (0.64 + 0.64 + 0.81 + 2.25) / 4)
    assert values.grad is not None
    torch.testing.assert_close(
        values.grad, torch.tensor([[0.0, 0.0, -0.225, -0.375, 0.0]], dtype=torch.float64)
    )
    assert stats.clip_fraction.item() == pytest.approx(0.5)


def test_losses_pass_numerical_gradient_checks() -> None:
    mask, adv, old_logp, noise = ragged_inputs(5, batch=5, length=6)
    logp = (old_logp + 0.3 * noise).requires_grad_(True)
    values = (old_logp + 0.3 * noise).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda lp: ppo_policy_loss(lp, old_logp, adv, mask)[0], (logp,))
    assert torch.autograd.gradcheck(lambda v: ppo_value_loss(v, old_logp, adv, mask)[0], (values,))


def test_approx_kl_is_measured_over_kl_mask_when_given() -> None:
    """The loss covers row 0 only (``mask``); ``kl_mask`` asks for the k3 KL over both rows.
    By hand, k3 = exp(d) - 1 - d with d = new - old (estimating KL(old || new) from samples of
    old): d = -0.5 on row 0's two tokens, d = 1 on row 1's first token."""
    old = torch.tensor([[0.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    new = torch.tensor([[-0.5, -0.5], [1.0, 3.0]], dtype=torch.float64)
    mask = torch.tensor([[1, 1], [0, 0]])
    kl_mask = torch.tensor([[1, 1], [1, 0]])
    k3 = lambda d: math.exp(d) - 1 - d  # noqa: E731
    _, alone = ppo_policy_loss(new, old, torch.ones_like(old), mask)
    _, wider = ppo_policy_loss(new, old, torch.ones_like(old), mask, kl_mask=kl_mask)
    assert math.isclose(float(alone.approx_kl), k3(-0.5), rel_tol=1e-12)
    assert math.isclose(float(wider.approx_kl), (2 * k3(-0.5) + k3(1.0)) / 3, rel_tol=1e-12)
