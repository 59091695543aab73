"""PPO moves the policy towards higher reward: a dense toy reward on a tiny model rises within minutes.

The reward (fraction of digit characters in a completion) needs no reasoning, so a sign error or
misaligned advantage anywhere in the six steps shows up as a flat or falling curve.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import CSVLogger

from reft_lightning.data.datasets import SyntheticDataModule
from reft_lightning.data.example import MathExample
from reft_lightning.generation import SamplingArgs
from reft_lightning.rewards.base import Reward, RewardOutput
from reft_lightning.stages.optim import OptimizerArgs
from reft_lightning.stages.ppo_args import PPOArgs
from reft_lightning.stages.reft import ReFTModule

ITERATIONS = 30


class DigitReward(Reward):
    """Score = fraction of non-space characters that are digits (0 for an empty completion)."""

    def __call__(self, completions: Sequence[str], examples: Sequence[MathExample]) -> RewardOutput:
        scores = []
        for text in completions:
            characters = [c for c in text if not c.isspace()]
            scores.append(sum(c.isdigit() for c in characters) / len(characters) if characters else 0.0)
        return RewardOutput(scores=scores, answers=[None] * len(scores), correct=[False] * len(scores))


class ScoreRecorder(L.Callback):
    def __init__(self) -> None:
        self.scores: list[float] = []

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        self.scores.append(float(trainer.callback_metrics["train/score"]))


def test_ppo_raises_a_dense_toy_reward(tiny_model_dir: Path, tmp_path: Path) -> None:
    L.seed_everything(0)
    module = ReFTModule(
        model=str(tiny_model_dir),
        reward=DigitReward(),
        value_init="zeros",
        ppo=PPOArgs(kl_coef=0.0),
        rollout=SamplingArgs(max_new_tokens=16),
        optimizer=OptimizerArgs(lr=3e-3, schedule="constant", warmup_ratio=0.0),
    )
    data = SyntheticDataModule(
        tokenizer=str(tiny_model_dir),
        num_train=64,
        num_val=4,
        num_test=4,
        train_batches="prompts",
        batch_size=16,
    )
    recorder = ScoreRecorder()
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=2 * ITERATIONS,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        logger=CSVLogger(tmp_path),
        callbacks=[recorder],
    )
    trainer.fit(module, data)
    first, last = statistics.mean(recorder.scores[:5]), statistics.mean(recorder.scores[-5:])
    assert len(recorder.scores) == ITERATIONS
    assert last > first + 0.15, f"reward did not rise: first 5 iterations {first:.3f}, last 5 {last:.3f}"
