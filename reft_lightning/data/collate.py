"""Batching: right-padded SFT batches, left-padded prompt batches for generation, and labelled sample
rows for the reward model.

Every tensor is ``int64`` and 2-D ``[B, T]`` unless stated. Features are dicts of token-id lists as
produced by ``data/tokenize.py``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch

from reft_lightning.data.example import MathExample

IGNORE_INDEX = -100
"""Label value that cross-entropy ignores (prompt and padding positions)."""


class BatchExamples:
    """The :class:`MathExample` of each row of a batch, in row order.

    A plain container on purpose: Lightning's batch transfer walks lists and dataclasses and would
    try to rebuild each frozen example; this it leaves as it is (the examples stay on the host).
    """

    def __init__(self, examples: Sequence[MathExample]) -> None:
        self._examples = tuple(examples)

    def __len__(self) -> int:
        return len(self._examples)

    def __iter__(self) -> Iterator[MathExample]:
        return iter(self._examples)

    def __getitem__(self, row: int) -> MathExample:
        return self._examples[row]


def pad_rows(rows: Sequence[Sequence[int]], value: int, left: bool) -> torch.Tensor:
    """``[len(rows), longest]`` int64, each row padded with ``value`` on the left or the right."""
    if not rows:
        return torch.zeros((0, 0), dtype=torch.long)
    tensors = [torch.tensor(list(r), dtype=torch.long) for r in rows]
    side = "left" if left else "right"
    return torch.nn.utils.rnn.pad_sequence(tensors, batch_first=True, padding_value=value, padding_side=side)


def collate_sft(features: Sequence[dict[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad full sequences for teacher forcing.

    Returns ``input_ids`` [B, T], ``attention_mask`` [B, T] (1 on real tokens) and ``labels`` [B, T]
    (token ids on target tokens and EOS, ``IGNORE_INDEX`` on prompt and padding).
    """
    ids = [f["input_ids"] for f in features]
    return {
        "input_ids": pad_rows(ids, pad_id, left=False),
        "attention_mask": pad_rows([[1] * len(r) for r in ids], 0, left=False),
        "labels": pad_rows([f["labels"] for f in features], IGNORE_INDEX, left=False),
    }


def collate_prompts(
    features: Sequence[dict[str, Any]], pad_id: int, examples: Sequence[MathExample]
) -> dict[str, Any]:
    """Left-pad prompts so that generation continues every row at the same position.

    ``examples`` is the split the features were tokenised from (a feature's ``index`` is its
    position there). Returns ``prompt_ids`` [B, P], ``prompt_mask`` [B, P] (1 on real tokens) and
    ``examples``, the B rows' :class:`BatchExamples` (gold answers travel with the batch).
    """
    prompts = [f["prompt_ids"] for f in features]
    return {
        "prompt_ids": pad_rows(prompts, pad_id, left=True),
        "prompt_mask": pad_rows([[1] * len(r) for r in prompts], 0, left=True),
        "examples": BatchExamples([examples[f["index"]] for f in features]),
    }


def collate_eval(
    features: Sequence[dict[str, Any]], pad_id: int, examples: Sequence[MathExample]
) -> dict[str, Any]:
    """Prompt batch for generation, plus the SFT tensors when every example has a gold target."""
    batch = collate_prompts(features, pad_id, examples)
    if all(f["input_ids"] for f in features):
        batch.update(collate_sft(features, pad_id))
    return batch


def collate_labelled(features: list[dict[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad sample rows: ``input_ids`` / ``attention_mask`` ``[S, T]``, ``labels`` ``[S]``.

    A feature is one sample (training) or one question's samples (evaluation, ``input_ids`` a list
    of rows); evaluation batches also get ``question`` ``[S]`` (the row's question within the batch)
    and ``position`` ``[S]`` (its place among that question's samples, for rerank@k).
    """
    grouped = isinstance(features[0]["labels"], list)
    rows, labels, question, position = [], [], [], []
    for index, feature in enumerate(features):
        ids = feature["input_ids"] if grouped else [feature["input_ids"]]
        rows += ids
        labels += feature["labels"] if grouped else [feature["labels"]]
        question += [index] * len(ids)
        position += list(range(len(ids)))
    batch = {
        "input_ids": pad_rows(rows, pad_id, left=False),
        "attention_mask": pad_rows([[1] * len(row) for row in rows], 0, left=False),
        "labels": torch.tensor(labels, dtype=torch.long),
    }
    if grouped:
        batch["question"] = torch.tensor(question, dtype=torch.long)
        batch["position"] = torch.tensor(position, dtype=torch.long)
    return batch
