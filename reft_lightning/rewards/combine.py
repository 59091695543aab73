"""Combining rewards: a weighted sum of several :class:`Reward` objects."""

from __future__ import annotations

from collections.abc import Sequence

from reft_lightning.data.example import MathExample
from reft_lightning.rewards.base import Reward, RewardOutput, check_lengths


class WeightedSum(Reward):
    """``score_i = sum_k weights[k] * rewards[k](completions, examples).scores[i]``.

    ``answers`` and ``correct`` come from the first reward (the one that checks the answer);
    metrics of reward ``k`` are logged as ``"{k}/{name}"`` plus ``"{k}/score"``, its mean score.

    Args:
        rewards: the rewards to combine, at least one.
        weights: one weight per reward; all 1.0 when omitted.
    """

    def __init__(self, rewards: Sequence[Reward], weights: Sequence[float] | None = None) -> None:
        if not rewards:
            raise ValueError("WeightedSum needs at least one reward")
        self.rewards = list(rewards)
        self.weights = [1.0] * len(self.rewards) if weights is None else [float(w) for w in weights]
        if len(self.weights) != len(self.rewards):
            raise ValueError(f"{len(self.weights)} weights for {len(self.rewards)} rewards")

    @property
    def scores_in_background(self) -> bool:  # type: ignore[override]
        """In the background only if every combined reward may be."""
        return all(reward.scores_in_background for reward in self.rewards)

    def __call__(self, completions: Sequence[str], examples: Sequence[MathExample]) -> RewardOutput:
        check_lengths(completions, examples)
        outputs = [reward(completions, examples) for reward in self.rewards]
        scores = [0.0] * len(completions)
        metrics: dict[str, float] = {}
        for k, (weight, output) in enumerate(zip(self.weights, outputs)):
            scores = [total + weight * score for total, score in zip(scores, output.scores)]
            metrics.update({f"{k}/{name}": value for name, value in output.metrics.items()})
            metrics[f"{k}/score"] = sum(output.scores) / max(len(output.scores), 1)
        first = outputs[0]
        return RewardOutput(scores=scores, answers=first.answers, correct=first.correct, metrics=metrics)

    def scores_format(self, cot_format: str) -> bool:
        """Every combined reward must score ``cot_format``."""
        return all(reward.scores_format(cot_format) for reward in self.rewards)

    def close(self) -> None:
        for reward in self.rewards:
            reward.close()
