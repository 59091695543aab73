"""Reward-model data: sampled solutions labelled by correctness, from ``reft predict`` files.

Spec ("Inference-time techniques"): sample solutions of the TRAIN questions from the warm-up model,
label each by correctness, train a 2-label classifier on ``reward_model_text``. Training batches are
single samples; validation and test batches are whole questions (all their samples), so that the
stage can rerank: pick, per question, the sample the classifier finds most likely correct.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import datasets
import torch
from torch.utils.data import DataLoader

from reft_lightning.data.collate import collate_labelled
from reft_lightning.data.example import MathExample
from reft_lightning.data.formats import CotFormat, CotFormatName, reward_model_text
from reft_lightning.data.module import TokenizingDataModule
from reft_lightning.data.predictions import PredictionRecord, read_predictions
from reft_lightning.data.sampler import eval_loader, resumable_train_loader

SPLIT_KEYS = {"train": "train_predictions", "val": "val_predictions", "test": "test_predictions"}
"""The config field (``data.init_args.*``) of each split's prediction file."""
STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}
"""The splits each Lightning stage reads (a file named for another split is not opened)."""


def labelled_samples(
    records: list[PredictionRecord], cot_format: CotFormat, key: str
) -> list[tuple[list[str], list[int]]]:
    """Per question: the texts the reward model reads (one per sample, in sampling order) and their
    labels (1 correct, 0 not). Raises ``ValueError`` naming ``key`` for a file without questions'
    text or without samples (written without ``sampling_eval``)."""
    if not records:
        raise ValueError(f"data.init_args.{key}: the prediction file holds no questions")
    questions: list[tuple[list[str], list[int]]] = []
    for record in records:
        if record.question is None or not record.samples:
            missing = "question text" if record.question is None else "samples"
            raise ValueError(
                f"data.init_args.{key}: question {record.id!r} has no {missing}: write the file with "
                "`reft predict` and model.init_args.sampling_eval.num_samples > 0"
            )
        example = MathExample(record.id, record.question, record.gold)
        texts = [reward_model_text(example, sample.text, cot_format) for sample in record.samples]
        questions.append((texts, [int(sample.correct) for sample in record.samples]))
    return questions


class RewardModelDataModule(TokenizingDataModule):
    """Sampled solutions labelled by correctness, read from prediction files (``data/predictions.py``).

    Args:
        train_predictions: ``reft predict`` file of the training questions, with samples (spec: 100
            per question from the warm-up model).
        val_predictions: the same for validation questions (rerank accuracy picks the best
            checkpoint); ``None``: no validation.
        test_predictions: the same for test questions (``reft test``); ``None``: no test.
        cot_format: the format the samples are written in (P-CoT texts get the program header back).
        batch_size: samples per device per training step.
        eval_batch_size: questions (each with all its samples) per device per evaluation batch.
        max_length: tokens kept per text, counted from its END (the answer is last).
        shuffle_seed: seed of the per-epoch shuffle of the training samples.
        num_workers: DataLoader worker processes.
        tokenizer: the classifier's tokenizer (``reft`` sets it from ``model.init_args.model``).
    """

    def __init__(
        self,
        train_predictions: str,
        val_predictions: str | None = None,
        test_predictions: str | None = None,
        cot_format: CotFormatName = "ncot",
        batch_size: int = 8,
        eval_batch_size: int = 4,
        max_length: int = 1024,
        shuffle_seed: int = 0,
        num_workers: int = 0,
        tokenizer: str | None = None,
    ) -> None:
        super().__init__()
        if max_length < 1:
            raise ValueError(f"data.init_args.max_length must be >= 1, got {max_length}")
        self.files = {"train": train_predictions, "val": val_predictions, "test": test_predictions}
        self.cot_format = CotFormat(cot_format)
        self.batch_size, self.eval_batch_size, self.max_length = batch_size, eval_batch_size, max_length
        self.shuffle_seed, self.num_workers, self.tokenizer_name = shuffle_seed, num_workers, tokenizer
        self.splits: dict[str, datasets.Dataset] = {}

    def setup(self, stage: str | None = None) -> None:
        """Read and tokenise, once, the given splits that ``stage`` uses (``fit``: train and val;
        ``validate``: val; ``test``: test; ``None``: all): training as one row per sample,
        evaluation as one row per question."""
        wanted = STAGE_SPLITS.get(stage or "", tuple(self.files))
        for split, path in self.files.items():
            if path is None or split in self.splits or split not in wanted:
                continue
            key = SPLIT_KEYS[split]
            questions = labelled_samples(read_predictions(path), self.cot_format, key)
            encode = partial(self._encode, grouped=split != "train")
            if split == "train":
                rows = {"text": [t for texts, _ in questions for t in texts],
                        "labels": [y for _, labels in questions for y in labels]}  # fmt: skip
            else:
                rows = {
                    "text": [texts for texts, _ in questions],
                    "labels": [labels for _, labels in questions],
                }
            self.splits[split] = datasets.Dataset.from_dict(rows).map(
                encode, batched=True, remove_columns=["text"], desc=f"tokenising {split} samples"
            )

    def _encode(self, batch: dict[str, list[Any]], grouped: bool) -> dict[str, list[Any]]:
        def ids(texts: list[str]) -> list[list[int]]:
            return [
                row[-self.max_length :]
                for row in self.tokenizer(texts, add_special_tokens=False)["input_ids"]
            ]

        return {"input_ids": [ids(texts) for texts in batch["text"]] if grouped else ids(batch["text"])}

    def _collate(self) -> partial[dict[str, torch.Tensor]]:
        return partial(collate_labelled, pad_id=self.tokenizer.pad_token_id)

    def train_dataloader(self) -> DataLoader:
        return resumable_train_loader(
            self.splits["train"],
            self.batch_size,
            self.trainer,
            self.shuffle_seed,
            self._collate(),
            self.num_workers,
        )

    def _eval_loader(self, split: str) -> DataLoader:
        if split not in self.splits:
            raise ValueError(
                f"data.init_args.{SPLIT_KEYS[split]} is not set: give the {split} prediction file"
            )
        return eval_loader(
            self.splits[split], self.eval_batch_size, self.trainer, self._collate(), self.num_workers
        )

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        return self._eval_loader("val") if "val" in self.splits else []

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")
