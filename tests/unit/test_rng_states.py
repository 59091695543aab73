"""RNG states round-trip through a weights-only checkpoint and reproduce the next draws."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from reft_lightning.stages.rng import (
    capture_rng_states,
    gather_rng_states,
    rank_rng_states,
    restore_rng_states,
)


def _draw() -> tuple[float, float, list[float]]:
    return random.random(), float(np.random.rand()), torch.rand(3).tolist()


def test_states_survive_weights_only_load_and_replay_the_same_draws(tmp_path: Path) -> None:
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    _draw()
    torch.save({"rng_states": capture_rng_states()}, tmp_path / "state.pt")
    expected = _draw()
    assert _draw() != expected
    restore_rng_states(torch.load(tmp_path / "state.pt", weights_only=True)["rng_states"])
    assert _draw() == expected


def test_each_rank_takes_its_own_saved_states() -> None:
    saved = [{"rank": 0}, {"rank": 1}]
    assert rank_rng_states(saved, 0) == {"rank": 0}
    assert rank_rng_states(saved, 1) == {"rank": 1}
    assert rank_rng_states({"single": True}, 3) == {"single": True}  # checkpoints from before per-rank states
    with pytest.warns(
        RuntimeWarning, match="holds RNG states of 2 processes; rank 3 resumes with those of rank 1"
    ):
        assert rank_rng_states(saved, 3) == {"rank": 1}


def test_gather_with_one_process_is_this_process_only() -> None:
    torch.manual_seed(5)
    (states,) = gather_rng_states(world_size=1)
    assert torch.equal(states["torch"], torch.get_rng_state())
