"""KL estimators against their definitions and exact expectations; the beta controllers."""

from __future__ import annotations

import math

import pytest
import torch

from reft_lightning.rl.kl import AdaptiveKLController, FixedKLController, kl_estimate


def test_estimators_match_their_formulas_elementwise() -> None:
    torch.manual_seed(0)
    logp, logp_ref = torch.randn(4, 7, dtype=torch.float64), torch.randn(4, 7, dtype=torch.float64)
    expected = {"k1": [], "k2": [], "k3": []}
    for lp, lr in zip(logp.flatten().tolist(), logp_ref.flatten().tolist()):
        expected["k1"].append(lp - lr)
        expected["k2"].append(0.5 * (lp - lr) ** 2)
        expected["k3"].append(math.exp(lr - lp) - 1 - (lr - lp))
    for kind, values in expected.items():
        actual = kl_estimate(logp, logp_ref, kind)  # type: ignore[arg-type]
        torch.testing.assert_close(actual, torch.tensor(values, dtype=torch.float64).view(4, 7))
    assert bool((kl_estimate(logp, logp_ref, "k1") < 0).any())
    assert bool((kl_estimate(logp, logp_ref, "k3") >= 0).all())


def test_k1_and_k3_are_unbiased_for_kl_of_policy_from_reference() -> None:
    # Sampling a ~ p, E_p[k] must equal KL(p || q) = sum_a p(a) log(p(a) / q(a)); compute exactly.
    p = [0.5, 0.3, 0.15, 0.05]
    q = [0.25, 0.25, 0.25, 0.25]
    true_kl = sum(pa * math.log(pa / qa) for pa, qa in zip(p, q))
    logp = torch.tensor(p, dtype=torch.float64).log()
    logq = torch.tensor(q, dtype=torch.float64).log()
    weights = torch.tensor(p, dtype=torch.float64)
    for kind in ("k1", "k3"):
        assert float((weights * kl_estimate(logp, logq, kind)).sum()) == pytest.approx(true_kl)
    assert float((weights * kl_estimate(logq, logp, "k1")).sum()) != pytest.approx(true_kl)


def test_unknown_estimator_and_shape_mismatch_raise() -> None:
    with pytest.raises(ValueError, match="k4"):
        kl_estimate(torch.zeros(2), torch.zeros(2), "k4")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shape"):
        kl_estimate(torch.zeros(2), torch.zeros(3))


def test_fixed_controller_never_changes() -> None:
    controller = FixedKLController(0.05)
    controller.update(current_kl=100.0, n_steps=1000)
    assert controller.value == 0.05


def test_adaptive_controller_follows_ziegler_update() -> None:
    # beta = 0.1, target 6 nats, horizon 10000, batch of 256 samples.
    # KL = 12: error = clip(12 / 6 - 1, -0.2, 0.2) = 0.2  -> beta = 0.1 * (1 + 0.2 * 256 / 10000) = 0.100512
    # KL = 5.4: error = 5.4 / 6 - 1 = -0.1 -> beta = 0.100512 * (1 - 0.1 * 0.0256) = 0.10025469
    controller = AdaptiveKLController(0.1, target=6.0, horizon=10000)
    controller.update(current_kl=12.0, n_steps=256)
    assert controller.value == pytest.approx(0.100512)
    controller.update(current_kl=5.4, n_steps=256)
    assert controller.value == pytest.approx(0.100512 * (1 - 0.00256))


def test_controller_state_round_trips() -> None:
    controller = AdaptiveKLController(0.1, target=6.0, horizon=100)
    controller.update(current_kl=0.0, n_steps=10)
    restored = AdaptiveKLController(0.1, target=6.0, horizon=100)
    restored.load_state_dict(controller.state_dict())
    assert restored.value == controller.value != 0.1


@pytest.mark.parametrize(("value", "target", "horizon"), [(-0.1, 6.0, 100), (0.1, 0.0, 100), (0.1, 6.0, 0)])
def test_invalid_controller_arguments_raise(value: float, target: float, horizon: int) -> None:
    with pytest.raises(ValueError):
        AdaptiveKLController(value, target=target, horizon=horizon)
