"""The advantage-estimator registry: names, what each needs, hand-worked values, and adding one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from reft_lightning.rl.advantages import broadcast_to_tokens
from reft_lightning.rl.estimators import (
    ADVANTAGE_ESTIMATORS,
    AdvantageInputs,
    advantage_estimator,
    register_advantage,
    sequence_rewards,
)
from reft_lightning.rl.gae import compute_gae

MASK = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 1.0]])


def _batch(values: torch.Tensor | None = None, kl_coef: float = 0.0) -> AdvantageInputs:
    scores = torch.tensor([1.0, 0.0, 0.1, 0.1])
    kl = torch.full((4, 3), 0.25)
    rewards = -kl_coef * kl * MASK
    return AdvantageInputs(rewards, values, MASK, scores, kl, kl_coef, group_size=2, gamma=1.0, lam=0.95)


def test_registered_estimators_declare_what_they_need() -> None:
    assert {"gae", "grpo", "rloo"} <= set(ADVANTAGE_ESTIMATORS)
    gae, grpo, rloo = (advantage_estimator(name) for name in ("gae", "grpo", "rloo"))
    assert (gae.needs_critic, gae.needs_groups) == (True, False)
    assert (grpo.needs_critic, grpo.needs_groups) == (False, True)
    assert (rloo.needs_critic, rloo.needs_groups) == (False, True)
    with pytest.raises(
        ValueError, match=r"unknown advantage estimator 'vtrace'; registered: .*gae, grpo, rloo"
    ):
        advantage_estimator("vtrace")


def test_gae_is_compute_gae_with_the_batch_values() -> None:
    values = torch.tensor([[0.5, 0.2, 9.0], [0.1, 9.0, 9.0], [0.3, 0.3, 0.3], [9.0, 0.4, 0.6]])
    batch = _batch(values, kl_coef=0.1)
    advantages, returns = advantage_estimator("gae").estimate(batch)
    expected = compute_gae(batch.rewards, values, MASK, 1.0, 0.95)
    torch.testing.assert_close(advantages, expected[0])
    torch.testing.assert_close(returns, expected[1])


def test_rloo_and_grpo_by_hand() -> None:
    # sequence rewards: scores - 0.5 * 0.25 * response length = [1 - 0.25, 0 - 0.125, 0.1 - 0.375, 0.1 - 0.25]
    batch = _batch(kl_coef=0.5)
    torch.testing.assert_close(sequence_rewards(batch), torch.tensor([0.75, -0.125, -0.275, -0.15]))
    rloo, no_returns = advantage_estimator("rloo").estimate(batch)  # minus the other sample of the pair
    torch.testing.assert_close(rloo, broadcast_to_tokens(torch.tensor([0.875, -0.875, -0.125, 0.125]), MASK))
    assert no_returns is None
    grpo, _ = advantage_estimator("grpo").estimate(batch)  # pair mean removed, / unbiased std of the pair
    std_a, std_b = 0.875 / 2**0.5, 0.125 / 2**0.5
    expected = torch.tensor(
        [0.4375 / (std_a + 1e-4), -0.4375 / (std_a + 1e-4), -0.0625 / (std_b + 1e-4), 0.0625 / (std_b + 1e-4)]
    )
    torch.testing.assert_close(grpo, broadcast_to_tokens(expected, MASK))


@pytest.fixture
def reinforce() -> Iterator[str]:
    @register_advantage("test_reinforce", needs_critic=False, needs_groups=False)
    def _reinforce(batch: AdvantageInputs) -> tuple[torch.Tensor, None]:
        return broadcast_to_tokens(sequence_rewards(batch), batch.mask), None

    yield "test_reinforce"
    del ADVANTAGE_ESTIMATORS["test_reinforce"]


def test_a_new_estimator_is_one_decorated_function(reinforce: str) -> None:
    estimator = advantage_estimator(reinforce)
    torch.testing.assert_close(
        estimator.estimate(_batch())[0], broadcast_to_tokens(torch.tensor([1.0, 0.0, 0.1, 0.1]), MASK)
    )
    with pytest.raises(ValueError, match="already registered"):
        register_advantage(reinforce, needs_critic=False, needs_groups=False)(
            lambda batch: (batch.scores, None)
        )
