"""A question that fills ``max_length`` leaves an SFT example nothing to train on (its loss would be
nan): such examples are dropped with one warning naming them, and a split of only those is refused."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from reft_lightning.data.collate import IGNORE_INDEX
from reft_lightning.data.datasets import RecordsDataModule

MAX_LENGTH = 48
LONG = "Ann has " + " and ".join(f"{i} apples" for i in range(60)) + ". How many?"


def _module(tiny_model_dir: Path, tmp_path: Path, long_rows: set[int]) -> RecordsDataModule:
    rows = [
        {
            "question": LONG if i in long_rows else f"What is {i} + 1?",
            "answer": str(i + 1),
            "cot": f"{i} + 1.",
        }
        for i in range(6)
    ]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    data = RecordsDataModule(
        train_file=str(path), test_file=str(path), cot_field="cot", val_size=2, split_seed=0,
        max_length=MAX_LENGTH, tokenizer=str(tiny_model_dir), batch_size=8,
    )  # fmt: skip
    data.setup("fit")
    return data


def test_examples_without_a_target_token_are_dropped_with_one_warning(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    data = _module(tiny_model_dir, tmp_path, long_rows={0, 1, 2})  # 2 of 6 are held out: 1 to 3 stay
    long_ids = [e.id for e in data.examples["train"] if e.question == LONG]
    with pytest.warns(UserWarning) as caught:
        batches = list(data.train_dataloader())
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            data.train_dataloader()  # once: the second loader does not warn again
    (warning,) = [w for w in caught if "max_length" in str(w.message)]
    message = str(warning.message)
    for fragment in (
        *long_ids,
        "split 'train'",
        f"dropped {len(long_ids)} of 4",
        f"data.init_args.max_length={MAX_LENGTH}",
    ):
        assert fragment in message, (fragment, message)
    (batch,) = batches
    assert batch["input_ids"].shape[0] == 4 - len(long_ids)
    assert bool((batch["labels"] != IGNORE_INDEX).any(dim=1).all()), "every kept example trains on a token"


def test_a_split_where_every_example_is_dropped_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = _module(tiny_model_dir, tmp_path, long_rows={0, 1, 2, 3, 4, 5})
    with pytest.raises(
        ValueError,
        match=rf"split 'train': in all 4 training examples .*data\.init_args\.max_length={MAX_LENGTH}",
    ):
        data.train_dataloader()
