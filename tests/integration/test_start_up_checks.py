"""Bad settings that a stage can see before its first batch stop ``fit`` in ``setup`` or
``configure_model``, with a message naming the config key."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import lightning as L
import pytest
from torch.utils.data import DataLoader

from reft_lightning import SFTModule
from reft_lightning.data.collate import collate_prompts
from reft_lightning.data.datasets import SyntheticDataModule
from reft_lightning.data.example import MathExample
from reft_lightning.generation import GenerationArgs, SamplingArgs
from reft_lightning.models.loading import load_tokenizer
from reft_lightning.stages.reft import ReFTModule

POSITIONS = 1024
"""``n_positions`` of the tiny test model."""


def _trainer(root: Path, limit_val_batches: int = 0) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu", max_steps=1, limit_val_batches=limit_val_batches, num_sanity_val_steps=0,
        logger=False, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
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


def test_rollout_tokens_beyond_the_models_positions_are_refused_when_the_model_is_built(
    tiny_model_dir: Path,
) -> None:
    module = ReFTModule(model=str(tiny_model_dir), rollout=SamplingArgs(max_new_tokens=POSITIONS + 1))
    with pytest.raises(
        ValueError,
        match=rf"model\.init_args\.rollout\.max_new_tokens={POSITIONS + 1} is .* beyond the {POSITIONS} "
        rf"positions .*config\.(n_positions|max_position_embeddings)",
    ):
        module.configure_model()


def test_the_longest_prompt_counts_before_fit_starts(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Each budget alone fits in the model; with the longest prompt of the data it does not."""
    data = _data(tiny_model_dir)
    module = SFTModule(str(tiny_model_dir), eval_generation=GenerationArgs(max_new_tokens=POSITIONS - 4))
    with pytest.raises(
        ValueError,
        match=r"model\.init_args\.eval_generation\.max_new_tokens=1020 plus the longest prompt \(\d+ tokens\)"
        r".*data\.init_args\.max_prompt_length",
    ):
        _trainer(tmp_path).fit(module, data)
    reft = ReFTModule(model=str(tiny_model_dir), rollout=SamplingArgs(max_new_tokens=POSITIONS - 4))
    with pytest.raises(ValueError, match=r"rollout\.max_new_tokens=1020 plus the longest prompt"):
        _trainer(tmp_path).fit(reft, _data(tiny_model_dir))


def test_without_a_data_module_the_first_batch_is_checked(tiny_model_dir: Path, tmp_path: Path) -> None:
    tokenizer = load_tokenizer(str(tiny_model_dir))
    examples = [MathExample(id="q0", question="What is 2 + 3?", answer="5")]
    features = [{"prompt_ids": tokenizer(examples[0].question)["input_ids"], "index": 0}]
    loader = DataLoader(
        features,
        batch_size=1,
        collate_fn=partial(collate_prompts, pad_id=tokenizer.pad_token_id, examples=examples),
    )
    module = SFTModule(str(tiny_model_dir), eval_generation=GenerationArgs(max_new_tokens=POSITIONS - 1))
    with pytest.raises(ValueError, match=r"eval_generation\.max_new_tokens=1023 plus the longest prompt"):
        _trainer(tmp_path, limit_val_batches=1).validate(module, dataloaders=loader)
