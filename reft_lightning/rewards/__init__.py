"""Rewards: answer checking and the sandbox. No Lightning imports here."""

from reft_lightning.rewards.base import OutcomeScores, Reward, RewardOutput
from reft_lightning.rewards.correctness import AnswerReward

__all__ = ["AnswerReward", "OutcomeScores", "Reward", "RewardOutput"]
