"""Built-in correctness rewards for N-CoT answers (and, in later modules, programs and choices)."""

from __future__ import annotations

from collections.abc import Sequence

from reft_lightning.data.example import MathExample
from reft_lightning.rewards.answers import (
    NCOT_TRIGGER,
    NUMERIC_TOLERANCE,
    extract_after_trigger,
    numbers_match,
    parse_number,
)
from reft_lightning.rewards.base import Answer, OutcomeScores, Reward, RewardOutput, check_lengths


class AnswerReward(Reward):
    """N-CoT reward: the number after the last answer trigger, compared with a tolerance.

    Args:
        correct: score of a correct answer.
        partial: score of an extracted but wrong answer (the paper's partial reward, 0.1).
        wrong: score when no number follows the trigger, or the trigger is missing.
        trigger: the answer trigger.
        tolerance: absolute tolerance of the numeric comparison.
    """

    def __init__(
        self,
        correct: float = 1.0,
        partial: float = 0.1,
        wrong: float = 0.0,
        trigger: str = NCOT_TRIGGER,
        tolerance: float = NUMERIC_TOLERANCE,
    ) -> None:
        self.outcome = OutcomeScores(correct=correct, partial=partial, wrong=wrong)
        self.trigger = trigger
        self.tolerance = tolerance

    def __call__(self, completions: Sequence[str], examples: Sequence[MathExample]) -> RewardOutput:
        check_lengths(completions, examples)
        answers: list[Answer] = []
        correct: list[bool] = []
        for completion, example in zip(completions, examples):
            predicted = parse_number(extract_after_trigger(completion, self.trigger))
            gold = parse_number(example.answer)
            answers.append(predicted)
            correct.append(gold is not None and numbers_match(predicted, gold, self.tolerance))
        scores = [self.outcome.score(a, c) for a, c in zip(answers, correct)]
        return RewardOutput(scores=scores, answers=answers, correct=correct)
