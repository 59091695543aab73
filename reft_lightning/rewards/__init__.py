"""Rewards: answer checking (P-CoT programs run in ``reft_lightning.sandbox``). No Lightning imports here."""

from reft_lightning.rewards.base import OutcomeScores, Reward, RewardOutput
from reft_lightning.rewards.combine import WeightedSum
from reft_lightning.rewards.correctness import AnswerReward, ChoiceReward, ProgramReward
from reft_lightning.sandbox import ExecutionResult, ProgramExecutor

__all__ = [
    "AnswerReward",
    "ChoiceReward",
    "ExecutionResult",
    "OutcomeScores",
    "ProgramExecutor",
    "ProgramReward",
    "Reward",
    "RewardOutput",
    "WeightedSum",
]
