"""Scores are checked where they leave the reward: a nan, an inf or a missing score is an error
naming the reward class and the sample, before anything trains on it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pytest

from reft_lightning.data.example import MathExample
from reft_lightning.generation import SamplingArgs
from reft_lightning.rewards.base import Reward, RewardOutput, score_completions
from reft_lightning.stages.reft import ReFTModule
from tests.integration.test_reft import _data, _trainer

EXAMPLES = [MathExample(id=f"q{i}", question="?", answer="1") for i in range(3)]


class FixedScores(Reward):
    """Returns the given scores, whatever the completions."""

    def __init__(self, scores: list[float]) -> None:
        self.scores = scores

    def __call__(self, completions: Sequence[str], examples: Sequence[MathExample]) -> RewardOutput:
        n = len(self.scores)
        return RewardOutput(scores=list(self.scores), answers=[None] * n, correct=[False] * n)


def test_finite_scores_pass_through() -> None:
    output = score_completions(FixedScores([1.0, 0.1, 0.0]), ["a", "b", "c"], EXAMPLES)
    assert output.scores == [1.0, 0.1, 0.0]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_non_finite_score_names_the_reward_and_the_sample(bad: float) -> None:
    with pytest.raises(
        ValueError,
        match=r"reward FixedScores returned a non-finite score .* for sample 1 "
        r"\(example 'q1', completion 'second'\)",
    ):
        score_completions(FixedScores([1.0, bad, 0.0]), ["first", "second", "third"], EXAMPLES)


def test_a_missing_score_is_an_error() -> None:
    with pytest.raises(ValueError, match="reward FixedScores returned 2 scores for 3 completions"):
        score_completions(FixedScores([1.0, 0.0]), ["a", "b", "c"], EXAMPLES)


def test_reft_stops_at_a_nan_reward_before_any_update(tiny_model_dir: Path, tmp_path: Path) -> None:
    module = ReFTModule(
        model=str(tiny_model_dir), reward=FixedScores([math.nan] * 4), rollout=SamplingArgs(max_new_tokens=4)
    )
    trainer = _trainer(tmp_path)
    with pytest.raises(ValueError, match="reward FixedScores returned a non-finite score nan for sample 0"):
        trainer.fit(module, _data(tiny_model_dir))
    assert trainer.global_step == 0, "no optimizer step was taken"
