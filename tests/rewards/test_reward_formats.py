"""A reward declares the CoT formats it scores; one used on data of another format is refused
(an N-CoT reward scores every P-CoT program 0, silently), and custom rewards pass by default."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from reft_lightning.data.example import MathExample
from reft_lightning.rewards import (
    AnswerReward,
    ChoiceReward,
    ProgramReward,
    Reward,
    RewardOutput,
    WeightedSum,
)
from reft_lightning.rewards.base import check_reward_format


class AnyFormat(Reward):
    """A custom reward that declares nothing."""

    def __call__(self, completions: Sequence[str], examples: Sequence[MathExample]) -> RewardOutput:
        n = len(completions)
        return RewardOutput(scores=[0.0] * n, answers=[None] * n, correct=[False] * n)


def test_each_builtin_reward_scores_its_own_format() -> None:
    program = ProgramReward(workers=1)  # the sandbox starts on first use only; none here
    cases = {
        AnswerReward(): {"ncot"},
        program: {"pcot"},
        ChoiceReward(): {"ncot"},
        ChoiceReward(program=program): {"pcot"},
        AnyFormat(): {"ncot", "pcot"},
        WeightedSum([AnswerReward(), AnyFormat()]): {"ncot"},
    }
    for reward, formats in cases.items():
        assert {f for f in ("ncot", "pcot") if reward.scores_format(f)} == formats, type(reward).__name__


def test_an_ncot_reward_on_pcot_data_names_both_keys_and_the_fix() -> None:
    with pytest.raises(
        ValueError,
        match=r"reward is AnswerReward, .* data\.init_args\.cot_format is 'pcot'.*Use ProgramReward",
    ):
        check_reward_format(AnswerReward(), "pcot")
    check_reward_format(AnyFormat(), "pcot")
