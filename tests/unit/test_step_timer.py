"""StepTimer: each step's wall seconds, also a section of the Trainer's profiler."""

from __future__ import annotations

import time

import pytest
import torch
from lightning.pytorch.profilers import PassThroughProfiler, SimpleProfiler

from reft_lightning.stages.timing import StepTimer


def test_steps_are_timed_and_profiled() -> None:
    profiler = SimpleProfiler()
    timer = StepTimer(profiler, torch.device("cpu"), "reft")
    with timer("rollout"):
        time.sleep(0.05)
    with timer("optimise"):
        pass
    assert set(timer.seconds) == {"rollout", "optimise"}
    assert 0.05 <= timer.seconds["rollout"] < 1.0 and timer.seconds["optimise"] < 0.05
    assert timer.elapsed() >= timer.seconds["rollout"] + timer.seconds["optimise"]
    assert set(profiler.recorded_durations) == {"reft/rollout", "reft/optimise"}
    assert profiler.recorded_durations["reft/rollout"][0] == pytest.approx(timer.seconds["rollout"], abs=0.01)


def test_a_step_that_raises_is_not_recorded() -> None:
    timer = StepTimer(PassThroughProfiler(), torch.device("cpu"), "sft")
    with pytest.raises(RuntimeError), timer("score"):
        raise RuntimeError("reward failed")
    assert timer.seconds == {}
