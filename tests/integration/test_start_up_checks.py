"""Bad settings that a stage can see before its first batch stop ``fit`` in ``setup`` or
``configure_model``, with a message naming the config key."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest

from reft_lightning import SFTModule
from reft_lightning.data.datasets import SyntheticDataModule


def _trainer(root: Path) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu", max_steps=1, limit_val_batches=0, num_sanity_val_steps=0, logger=False,
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
        default_root_dir=root,
    )  # fmt: skip


def _data(tiny_model_dir: Path, **kwargs: object) -> SyntheticDataModule:
    return SyntheticDataModule(
        tokenizer=str(tiny_model_dir), num_train=8, num_val=2, num_test=2, batch_size=4, **kwargs
    )


def test_sft_refuses_a_data_module_set_to_prompt_batches(tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(
        ValueError,
        match=r"SFTModule trains on 'sft' batches, but data\.init_args\.train_batches is 'prompts'",
    ):
        _trainer(tmp_path).fit(SFTModule(str(tiny_model_dir)), _data(tiny_model_dir, train_batches="prompts"))


def test_the_default_ncot_reward_is_refused_on_pcot_data(tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match=r"model\.init_args\.reward is AnswerReward.*data\.init_args\.cot_format"
    ):
        _trainer(tmp_path).fit(SFTModule(str(tiny_model_dir)), _data(tiny_model_dir, cot_format="pcot"))
