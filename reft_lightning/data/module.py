"""The LightningDataModule base shared by every math dataset.

Flow: ``load_splits`` (subclass) -> train/val/test ``MathExample`` lists (validation held out from
train unless the source has one) -> ``tokenize_examples`` once -> loaders: SFT batches for
training, prompt (+ SFT) batches for validation and test.
"""

from __future__ import annotations

import random
from abc import abstractmethod
from functools import partial
from pathlib import Path
from typing import Literal

import datasets
import lightning as L
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerBase

from reft_lightning.data.collate import IGNORE_INDEX, collate_eval, collate_prompts, collate_sft
from reft_lightning.data.example import MathExample
from reft_lightning.data.fetch import resolve_source
from reft_lightning.data.formats import CotFormat, CotFormatName
from reft_lightning.data.predictions import (
    PAPER_SAMPLES_PER_QUESTION,
    read_predictions,
    self_training_examples,
)
from reft_lightning.data.sampler import eval_loader, resumable_train_loader
from reft_lightning.data.tokenize import tokenize_examples
from reft_lightning.models.loading import load_tokenizer

Split = Literal["train", "val", "test"]
TrainBatches = Literal["sft", "prompts", "prompts_and_sft"]
"""What a stage trains on: ``sft`` (prompt + gold target, right-padded), ``prompts`` (left-padded
questions for rollouts) or ``prompts_and_sft`` (both, row by row: rollouts and the gold chain)."""


def hold_out(
    examples: list[MathExample], size: float | int, seed: int
) -> tuple[list[MathExample], list[MathExample]]:
    """Split ``examples`` into (train, validation): ``size`` examples, or that fraction if ``size < 1``."""
    count = round(len(examples) * size) if 0 < size < 1 else int(size)
    if not 0 < count < len(examples):
        raise ValueError(f"val_size={size} leaves no train or no validation examples out of {len(examples)}")
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    held = set(order[:count])
    return [e for i, e in enumerate(examples) if i not in held], [examples[i] for i in sorted(held)]


def source_key(split: str) -> str:
    """The config field of ``split``'s data file, as errors name it."""
    return f"data.init_args.{split}_file"


def _require_gold_chains(examples: list[MathExample], module: str) -> None:
    """SFT trains on gold chains: refuse training examples without one, before any batch is built."""
    missing = [e.id for e in examples if not e.cot]
    if missing:
        raise ValueError(
            f"{module}: {len(missing)} of {len(examples)} training examples have no gold chain of "
            f"thought (e.g. {missing[:3]}), which SFT trains on: set the records' CoT field "
            f"(data.init_args.cot_field) or use a training file with solutions"
        )


def _report_unsupervised(examples: list[MathExample], rows: list[int], max_length: int, module: str) -> None:
    """Warn once about training examples ``rows`` whose prompt fills ``max_length`` tokens; refuse a
    split where that is every example."""
    if not rows:
        return
    ids = [examples[row].id for row in rows[:5]]
    reason = (
        f"the prompt (question) fills data.init_args.max_length={max_length} tokens, leaving no target "
        f"token to train on"
    )
    if len(rows) == len(examples):
        raise ValueError(
            f"{module}: split 'train': in all {len(rows)} training examples {reason} (e.g. {ids}): "
            f"raise data.init_args.max_length or shorten the questions"
        )
    more = ", ..." if len(rows) > len(ids) else ""
    rank_zero_warn(
        f"{module}: split 'train': dropped {len(rows)} of {len(examples)} training examples where {reason} "
        f"(ids {ids}{more}); raise data.init_args.max_length to keep them"
    )


def named_tokenizer(name: str | None) -> PreTrainedTokenizerBase:
    """Load the data module's tokenizer ``name``; the ``reft`` CLI sets it to the model's."""
    if name is None:
        raise ValueError(
            "data.init_args.tokenizer is not set: name the model's tokenizer (the `reft` command "
            "fills it in from model.init_args.tokenizer, or else model.init_args.model)"
        )
    return load_tokenizer(name, "data.init_args.tokenizer")


class TokenizingDataModule(L.LightningDataModule):
    """A data module that tokenises with the tokenizer named ``tokenizer_name`` (the
    ``data.init_args.tokenizer`` key, which ``reft`` fills in from the model), loaded once on first use."""

    tokenizer_name: str | None = None
    _tokenizer: PreTrainedTokenizerBase | None = None

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        """The tokenizer named by ``tokenizer``, loaded once."""
        if self._tokenizer is None:
            self._tokenizer = named_tokenizer(self.tokenizer_name)
        return self._tokenizer


class MathDataModule(TokenizingDataModule):
    """Base of every dataset module. Subclasses implement :meth:`load_splits` only.

    Args:
        cot_format: ``ncot`` (natural-language chain) or ``pcot`` (Python program).
        batch_size: training examples per device per step (SFT sequences, or questions per RL rollout).
        eval_batch_size: prompts per device per generation batch.
        max_length: tokens of prompt + target + EOS kept for SFT (spec: 1024); SFT drops training
            examples whose prompt alone fills it, warning once (none left is an error).
        max_prompt_length: tokens of a generation prompt kept, counted from its end (spec: 300).
        val_size: validation examples held out from train (a fraction if < 1) when the source has
            no validation split; model selection uses it, never the test set.
        split_seed: seed of that hold-out.
        max_train_examples: keep only the first N train examples (quick runs); ``None`` keeps all.
        max_eval_examples: keep only the first N validation and test examples.
        shuffle_seed: seed of the per-epoch shuffle of the training set.
        num_workers: DataLoader worker processes.
        cache_dir: where tokenised splits are cached; ``None`` tokenises in memory every run.
        tokenizer: tokenizer name or path, the model's (``reft`` sets it from the model when unset).
        train_batches: ``None``: what the stage trains on, which it sets when fitting starts
            (SFT: ``sft``, prompt + target; ReFT: ``prompts``, left-padded questions for
            rollouts; online self-training: ``prompts_and_sft``; see :data:`TrainBatches`). Set it
            only to use the data module without a stage (``None`` then gives ``sft``).
        predict_split: the split ``reft predict`` answers (``train`` to sample training questions).
        train_predictions: offline self-training: a prediction file of the training questions
            (``reft predict`` with ``predict_split: train`` and sampling on); SFT then trains on each
            gold chain plus up to ``samples_per_question`` distinct correct samples of its question
            (``data/predictions.py``). ``None``: gold chains only.
        samples_per_question: the most correct samples kept per question (spec: 10).
    """

    def __init__(
        self,
        cot_format: CotFormatName = "ncot",
        batch_size: int = 4,
        eval_batch_size: int = 16,
        max_length: int = 1024,
        max_prompt_length: int = 300,
        val_size: float = 0.05,
        split_seed: int = 42,
        max_train_examples: int | None = None,
        max_eval_examples: int | None = None,
        shuffle_seed: int = 0,
        num_workers: int = 0,
        cache_dir: str | None = None,
        tokenizer: str | None = None,
        train_batches: TrainBatches | None = None,
        predict_split: Split = "test",
        train_predictions: str | None = None,
        samples_per_question: int = PAPER_SAMPLES_PER_QUESTION,
    ) -> None:
        super().__init__()
        self.train_batches = train_batches
        self.predict_split = predict_split
        if samples_per_question < 0:
            raise ValueError(f"data.init_args.samples_per_question must be >= 0, got {samples_per_question}")
        self.train_predictions, self.samples_per_question = train_predictions, samples_per_question
        self.cot_format = CotFormat(cot_format)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.max_length = max_length
        self.max_prompt_length = max_prompt_length
        self.val_size = val_size
        self.split_seed = split_seed
        self.max_train_examples = max_train_examples
        self.max_eval_examples = max_eval_examples
        self.shuffle_seed = shuffle_seed
        self.num_workers = num_workers
        self.cache_dir = cache_dir
        self.tokenizer_name = tokenizer
        self.examples: dict[str, list[MathExample]] = {}
        self._tokenized: dict[str, datasets.Dataset] = {}
        self._sft_train: datasets.Dataset | None = None

    @abstractmethod
    def load_splits(self) -> dict[str, list[MathExample]]:
        """Return ``{"train": [...], "test": [...]}`` and optionally ``"val"``."""

    def sources(self) -> dict[str, str]:
        """The data files this module reads, by split: local paths or URLs (none by default)."""
        return {}

    def local_sources(self) -> dict[str, Path]:
        """:meth:`sources` as local files, by split: URLs downloaded into the cache on first use."""
        return {split: resolve_source(source, source_key(split)) for split, source in self.sources().items()}

    def prepare_data(self) -> None:
        """Download URL sources (and check local ones), on one process per node before any ``setup``."""
        self.local_sources()

    def setup(self, stage: str | None = None) -> None:
        if self.examples:
            return
        splits = self.load_splits()
        train = splits["train"][: self.max_train_examples]
        if "val" in splits:
            val = splits["val"]
        else:
            train, val = hold_out(train, self.val_size, self.split_seed)
        self.examples = {
            "train": train,
            "val": val[: self.max_eval_examples],
            "test": splits["test"][: self.max_eval_examples],
        }
        for split, examples in self.examples.items():
            self._tokenized[split] = tokenize_examples(
                examples,
                self.tokenizer,
                self.cot_format,
                self.max_length,
                self.max_prompt_length,
                self.cache_dir,
            )

    def longest_prompt(self, split: str) -> int:
        """Tokens of the longest generation prompt of ``split`` (at most ``max_prompt_length``); 0 before
        :meth:`setup` or for an unknown split."""
        tokenized = self._tokenized.get(split)
        if tokenized is None or len(tokenized) == 0:
            return 0
        return max(len(ids) for ids in tokenized["prompt_ids"])

    def train_dataloader(self) -> DataLoader:
        pad_id, examples = self.tokenizer.pad_token_id, self.examples["train"]
        if self.train_batches in ("prompts", "prompts_and_sft") and self.train_predictions is not None:
            raise ValueError(
                "data.init_args.train_predictions (offline self-training data) is for SFT; this stage "
                f"trains on {self.train_batches!r} batches of the training questions: remove the key"
            )
        if self.train_batches == "prompts":
            columns, collate = (
                ["prompt_ids", "index"],
                partial(collate_prompts, pad_id=pad_id, examples=examples),
            )
            train = self._tokenized["train"]
        elif self.train_batches == "prompts_and_sft":
            _require_gold_chains(examples, type(self).__name__)
            columns = ["prompt_ids", "index", "input_ids", "labels"]
            collate, train = partial(collate_eval, pad_id=pad_id, examples=examples), self._tokenized["train"]
        else:  # "sft", or None (no stage attached)
            _require_gold_chains(examples, type(self).__name__)
            columns, collate = ["input_ids", "labels"], partial(collate_sft, pad_id=pad_id)
            train = self._supervised_train()
        return resumable_train_loader(
            train.select_columns(columns),
            self.batch_size,
            self.trainer,
            self.shuffle_seed,
            collate,
            self.num_workers,
        )

    def _supervised_train(self) -> datasets.Dataset:
        """The tokenised training split for SFT, without the examples that would train on no token.

        An example whose prompt alone fills ``max_length`` keeps no target token (every label is
        ``IGNORE_INDEX``; a batch of such examples has a nan loss). They are dropped and counted,
        with one warning naming them; when every example is dropped, that is an error.
        """
        if self._sft_train is None:
            examples, tokenized = self._supervised_examples()
            unsupervised = [
                row for row, labels in enumerate(tokenized["labels"]) if labels and labels[-1] == IGNORE_INDEX
            ]
            _report_unsupervised(examples, unsupervised, self.max_length, type(self).__name__)
            dropped = set(unsupervised)
            self._sft_train = tokenized.select([row for row in range(len(tokenized)) if row not in dropped])
        return self._sft_train

    def _supervised_examples(self) -> tuple[list[MathExample], datasets.Dataset]:
        """The SFT training examples and their tokens: the training split, or with
        ``train_predictions`` the offline self-training data built from it."""
        train = self.examples["train"]
        if self.train_predictions is None:
            return train, self._tokenized["train"]
        key = "data.init_args.train_predictions"
        records = read_predictions(self.train_predictions, split="train")
        examples = self_training_examples(train, records, self.cot_format, self.samples_per_question, key)
        rank_zero_info(
            f"{type(self).__name__}: offline self-training on {len(examples)} chains: {len(train)} gold and "
            f"{len(examples) - len(train)} correct samples from {self.train_predictions}"
        )
        tokenized = tokenize_examples(
            examples, self.tokenizer, self.cot_format, self.max_length, self.max_prompt_length, self.cache_dir
        )
        return examples, tokenized

    def _eval_loader(self, split: Split) -> DataLoader:
        return eval_loader(
            self._tokenized[split],
            self.eval_batch_size,
            self.trainer,
            partial(collate_eval, pad_id=self.tokenizer.pad_token_id, examples=self.examples[split]),
            self.num_workers,
        )

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._eval_loader(self.predict_split)
