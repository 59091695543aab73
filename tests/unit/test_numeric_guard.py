"""NonFiniteGuard: a nan or inf gradient norm skips the step, is counted, and stops the run in time."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from reft_lightning.stages.numeric_guard import NonFiniteGuard, NonFiniteTrainingError


def _parameters() -> list[torch.nn.Parameter]:
    parameters = [torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(3))]
    for parameter in parameters:
        parameter.grad = torch.full_like(parameter, 0.5)
    return parameters


def test_a_finite_norm_steps_and_resets_the_run_of_skips() -> None:
    guard = NonFiniteGuard(max_consecutive=3, skipped=2, consecutive=2)
    parameters = _parameters()
    assert guard.allow_step(1.5, parameters, step=7)
    assert (guard.skipped, guard.consecutive) == (2, 0)
    assert all(p.grad is not None for p in parameters)


@pytest.mark.parametrize("norm", [math.nan, math.inf])
def test_a_nonfinite_norm_skips_clears_gradients_and_warns_once(norm: float) -> None:
    guard = NonFiniteGuard(max_consecutive=3)
    parameters = _parameters()
    with pytest.warns(RuntimeWarning, match=r"optimizer step 7 skipped.*max_nonfinite_steps=3"):
        assert not guard.allow_step(norm, parameters, step=7)
    assert all(p.grad is None for p in parameters)
    optimizer = torch.optim.AdamW(parameters, lr=1.0)
    optimizer.step()
    assert all(torch.equal(p.detach(), torch.ones_like(p)) for p in parameters), "AdamW skips them"
    assert optimizer.state == {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert not guard.allow_step(norm, _parameters(), step=8)
    assert caught == [], "one warning per run"
    assert (guard.skipped, guard.consecutive) == (2, 2)


def test_the_step_after_max_consecutive_skips_stops_the_run_naming_the_causes() -> None:
    guard = NonFiniteGuard(max_consecutive=2)
    with pytest.warns(RuntimeWarning):
        assert not guard.allow_step(math.nan, _parameters(), step=0)
    assert not guard.allow_step(math.nan, _parameters(), step=1)
    with pytest.raises(NonFiniteTrainingError, match=r"step 2: 3 consecutive.*optimizer\.lr.*dtype"):
        guard.allow_step(math.nan, _parameters(), step=2)


def test_a_finite_step_between_skips_restarts_the_count() -> None:
    guard = NonFiniteGuard(max_consecutive=1)
    with pytest.warns(RuntimeWarning):
        guard.allow_step(math.nan, _parameters(), step=0)
    guard.allow_step(1.0, _parameters(), step=1)
    guard.allow_step(math.inf, _parameters(), step=2)
    assert (guard.skipped, guard.consecutive) == (2, 1)


def test_under_a_gradient_scaler_the_skip_is_only_counted() -> None:
    guard = NonFiniteGuard()
    parameters = _parameters()
    with pytest.warns(RuntimeWarning):
        assert not guard.allow_step(math.inf, parameters, step=0, clear=False)
    assert all(p.grad is not None for p in parameters)
    assert guard.skipped == 1


def test_counts_survive_a_checkpoint() -> None:
    restored = NonFiniteGuard()
    restored.load_state_dict(NonFiniteGuard(skipped=4, consecutive=1).state_dict())
    assert (restored.skipped, restored.consecutive) == (4, 1)
