"""Rewards: answer checking and the sandbox. No Lightning imports here."""

from reft_lightning.rewards.base import OutcomeScores, Reward, RewardOutput
from reft_lightning.rewards.combine import WeightedSum
from reft_lightning.rewards.correctness import AnswerReward, ChoiceReward, ProgramReward
from reft_lightning.rewards.sandbox import ExecutionResult, ProgramExecutor

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
