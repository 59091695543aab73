"""RNG states round-trip through a weights-only checkpoint and reproduce the next draws."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from reft_lightning.stages.rng import capture_rng_states, restore_rng_states


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
