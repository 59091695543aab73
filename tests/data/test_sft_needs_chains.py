"""SFT on records without gold chains is refused with a message, not a reshape error mid-batch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reft_lightning.data.datasets import RecordsDataModule


def _records(path: Path, with_cot: bool) -> Path:
    rows = [{"question": f"What is {i} + 1?", "answer": str(i + 1)} for i in range(6)]
    if with_cot:
        rows = [{**row, "solution": f"{i} + 1 = {i + 1}."} for i, row in enumerate(rows)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.mark.parametrize("with_cot", [False, True])
def test_sft_batches_need_a_gold_chain(tiny_model_dir: Path, tmp_path: Path, with_cot: bool) -> None:
    records = _records(tmp_path / "train.jsonl", with_cot)
    data = RecordsDataModule(
        train_file=str(records),
        test_file=str(records),
        cot_field="solution" if with_cot else None,
        val_size=2,
        tokenizer=str(tiny_model_dir),
    )
    data.setup("fit")
    if with_cot:
        assert data.examples["train"][0].cot is not None
        return
    with pytest.raises(ValueError, match=r"RecordsDataModule: 4 of 4 training examples have no gold chain"):
        data.train_dataloader()
