"""Prompt batches carry their gold examples: a stage evaluates any loader of such batches, with no
data module to look answers up in, and the examples reach the reward in the batch's row order."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

import lightning as L
from torch.utils.data import DataLoader

from reft_lightning import SFTModule
from reft_lightning.data.collate import collate_prompts
from reft_lightning.data.example import MathExample
from reft_lightning.generation import GenerationArgs
from reft_lightning.models.loading import load_tokenizer
from reft_lightning.rewards.base import Reward, RewardOutput


class GoldIsOneReward(Reward):
    """Correct exactly when the example's gold answer is ``"1"`` (ignores the completion), and
    records the example ids it was asked about."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, completions: Sequence[str], examples: Sequence[MathExample]) -> RewardOutput:
        self.seen += [e.id for e in examples]
        correct = [e.answer == "1" for e in examples]
        return RewardOutput(
            scores=[float(c) for c in correct], answers=[None] * len(correct), correct=correct
        )


def test_validation_reads_gold_answers_from_the_batch(tiny_model_dir: Path, tmp_path: Path) -> None:
    examples = [
        MathExample(id=f"q{i}", question=f"What is {i} + 0?", answer=a) for i, a in enumerate("10110")
    ]
    tokenizer = load_tokenizer(str(tiny_model_dir))
    features = [
        {"prompt_ids": tokenizer(e.question)["input_ids"], "index": i} for i, e in enumerate(examples)
    ]
    order = [3, 0, 4, 1, 2]
    loader = DataLoader(
        [features[i] for i in order],
        batch_size=2,
        collate_fn=partial(collate_prompts, pad_id=tokenizer.pad_token_id, examples=examples),
    )
    reward = GoldIsOneReward()
    module = SFTModule(str(tiny_model_dir), reward=reward, eval_generation=GenerationArgs(max_new_tokens=3))
    trainer = L.Trainer(
        accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, default_root_dir=tmp_path
    )

    (metrics,) = trainer.validate(module, dataloaders=loader)

    assert reward.seen == [f"q{i}" for i in order]
    assert abs(metrics["val/accuracy"] - 3 / 5) < 1e-6
