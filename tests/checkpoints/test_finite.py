"""The check before every save finds a non-finite tensor anywhere in a checkpoint and names it."""

from __future__ import annotations

import math

import pytest
import torch

from reft_lightning.checkpoints.finite import NonFiniteStateError, first_nonfinite, require_finite


def _checkpoint(bad: float | None = None) -> dict:
    moment = torch.ones(3)
    if bad is not None:
        moment[1] = bad
    return {
        "state_dict": {"model.w": torch.zeros(2, 2), "steps": torch.tensor([3, 4])},
        "optimizer_states": [{"state": {0: {"step": torch.tensor(5.0), "exp_avg": moment}}}],
        "epoch": 2,
    }


def test_all_finite() -> None:
    assert first_nonfinite(_checkpoint()) is None
    assert first_nonfinite({}) is None
    assert first_nonfinite({"empty": torch.empty(0)}) is None


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_nonfinite_optimizer_moment_is_named(bad: float) -> None:
    assert first_nonfinite(_checkpoint(bad)) == "optimizer_states.0.state.0.exp_avg"


def test_integer_tensors_are_not_checked_and_bfloat16_is() -> None:
    assert first_nonfinite({"ids": torch.tensor([2**62])}) is None
    assert first_nonfinite({"w": torch.tensor([1.0, math.nan], dtype=torch.bfloat16)}) == "w"


def test_require_finite_says_what_was_not_written() -> None:
    require_finite(_checkpoint(), "x")
    with pytest.raises(NonFiniteStateError, match=r"not writing runs/a/last\.ckpt: tensor 'model\.w'"):
        require_finite({"model.w": torch.tensor([math.nan])}, "runs/a/last.ckpt")
