"""A reward that calls exactly one question (by id) correct: counts how often evaluation sees it."""

from __future__ import annotations

from collections.abc import Sequence

from reft_lightning.data.example import MathExample
from reft_lightning.rewards.base import Reward, RewardOutput


class OneQuestionReward(Reward):
    """Score 1 and correct for question ``question_id``, 0 for every other."""

    def __init__(self, question_id: str) -> None:
        self.question_id = question_id

    def __call__(self, completions: Sequence[str], examples: Sequence[MathExample]) -> RewardOutput:
        correct = [e.id == self.question_id for e in examples]
        return RewardOutput(
            scores=[float(c) for c in correct], answers=[None] * len(examples), correct=correct
        )
