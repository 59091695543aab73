"""Rewards that allow it score in a background thread while ReFT's evaluate step runs; the iteration
must come out exactly as with scoring in the trainer's thread, and a reward's error must still stop it."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import pytest
import torch

from reft_lightning.data.example import MathExample
from reft_lightning.rewards.base import RewardOutput
from reft_lightning.rewards.combine import WeightedSum
from reft_lightning.rewards.correctness import AnswerReward, ProgramReward
from reft_lightning.rewards.reward_model import RewardModelReward
from tests.integration.test_reft import _data, _module, _trainer


class ThreadRecordingReward(AnswerReward):
    """AnswerReward that records the thread it scored in and, when asked, returns a nan score."""

    def __init__(self, background: bool, fail: bool = False) -> None:
        super().__init__()
        self.scores_in_background = background
        self.fail = fail
        self.threads: list[str] = []

    def __call__(self, completions: Sequence[str], examples: Sequence[MathExample]) -> RewardOutput:
        self.threads.append(threading.current_thread().name)
        output = super().__call__(completions, examples)
        if self.fail:
            output.scores[0] = float("nan")
        return output


def test_background_scoring_gives_the_same_iterations_as_scoring_in_the_trainer_thread(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    states, rewards = {}, {}
    for background in (False, True):
        L.seed_everything(0)
        module = _module(tiny_model_dir)
        module.reward = rewards[background] = ThreadRecordingReward(background)
        _trainer(tmp_path / str(background)).fit(module, _data(tiny_model_dir))
        states[background] = module.state_dict()
        assert module._scoring_thread is None  # stopped at teardown
    assert rewards[False].threads == [threading.main_thread().name] * 4
    assert len(rewards[True].threads) == 4 and all(t.startswith("reft-score") for t in rewards[True].threads)
    for name, tensor in states[True].items():
        torch.testing.assert_close(tensor, states[False][name], rtol=0, atol=0, msg=name)


def test_an_error_of_a_background_reward_stops_the_run_with_its_message(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    module = _module(tiny_model_dir)
    module.reward = ThreadRecordingReward(background=True, fail=True)
    with pytest.raises(ValueError, match="ThreadRecordingReward returned a non-finite score nan"):
        _trainer(tmp_path).fit(module, _data(tiny_model_dir))


def test_which_rewards_score_in_the_background() -> None:
    assert AnswerReward.scores_in_background and ProgramReward.scores_in_background
    assert not RewardModelReward.scores_in_background  # it runs a model on the trainer's device
    assert WeightedSum([AnswerReward(), AnswerReward()]).scores_in_background
    mixed = WeightedSum([AnswerReward(), ThreadRecordingReward(background=False)])
    assert not mixed.scores_in_background
