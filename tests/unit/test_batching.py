"""Tokenisation, padding and masking of SFT and prompt batches; the hold-out split."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from reft_lightning.data.collate import IGNORE_INDEX, collate_eval, collate_prompts, collate_sft
from reft_lightning.data.example import MathExample
from reft_lightning.data.formats import CotFormat, prompt_text, target_text
from reft_lightning.data.module import hold_out
from reft_lightning.data.tokenize import tokenize_examples
from reft_lightning.models.loading import load_tokenizer


def test_sft_batch_is_right_padded_and_masks_prompt_and_padding() -> None:
    features = [
        {"input_ids": [5, 6, 7, 8], "labels": [-100, -100, 7, 8]},
        {"input_ids": [9, 3], "labels": [-100, 3]},
    ]
    batch = collate_sft(features, pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8], [9, 3, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert batch["labels"].tolist() == [[-100, -100, 7, 8], [-100, 3, -100, -100]]


SPLIT = [MathExample(id=f"q{i}", question=f"question {i}", answer=str(i)) for i in range(5)]


def test_prompt_batch_is_left_padded_and_carries_its_examples() -> None:
    batch = collate_prompts(
        [{"prompt_ids": [1, 2, 3], "index": 4}, {"prompt_ids": [7], "index": 0}], pad_id=9, examples=SPLIT
    )
    assert batch["prompt_ids"].tolist() == [[1, 2, 3], [9, 9, 7]]
    assert batch["prompt_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]
    assert [e.id for e in batch["examples"]] == ["q4", "q0"]
    assert type(batch["examples"]).__name__ == "BatchExamples"


def test_eval_batch_has_sft_tensors_only_when_every_example_has_a_target() -> None:
    with_targets = [{"prompt_ids": [1], "index": 0, "input_ids": [1, 2], "labels": [-100, 2]}]
    assert "labels" in collate_eval(with_targets, pad_id=0, examples=SPLIT)
    mixed = [*with_targets, {"prompt_ids": [1], "index": 1, "input_ids": [], "labels": []}]
    assert "labels" not in collate_eval(mixed, pad_id=0, examples=SPLIT)


@pytest.mark.parametrize("cot_format", ["ncot", "pcot"])
def test_tokenized_sequence_is_prompt_target_eos_with_prompt_masked(
    tiny_model_dir: Path, cot_format: str
) -> None:
    tokenizer = load_tokenizer(str(tiny_model_dir))
    cot = (
        "Ann has 2 + 3 = 5 pens."
        if cot_format == "ncot"
        else 'def solution():\n    """Ann has 2 pens."""\n    return 2'
    )
    example = MathExample(id="a", question="Ann has 2 pens.", answer="5", cot=cot)
    row = tokenize_examples(
        [example], tokenizer, CotFormat(cot_format), max_length=1024, max_prompt_length=300
    )[0]
    encode = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    prompt = encode(prompt_text(example, cot_format, for_generation=False))
    target = encode(target_text(example, cot_format))
    assert row["input_ids"] == prompt + target + [tokenizer.eos_token_id]
    assert row["labels"] == [IGNORE_INDEX] * len(prompt) + target + [tokenizer.eos_token_id]
    assert row["prompt_ids"] == encode(prompt_text(example, cot_format, for_generation=True))


def test_truncation_keeps_the_end_of_long_prompts_and_the_start_of_long_sequences(
    tiny_model_dir: Path,
) -> None:
    tokenizer = load_tokenizer(str(tiny_model_dir))
    example = MathExample(id="a", question="Ann has 2 pens. " * 20, answer="2", cot="She has 2 pens. " * 20)
    row = tokenize_examples([example], tokenizer, CotFormat.NCOT, max_length=30, max_prompt_length=8)[0]
    full_prompt = tokenizer(prompt_text(example, "ncot", True), add_special_tokens=False)["input_ids"]
    assert row["prompt_ids"] == full_prompt[-8:]
    assert len(row["input_ids"]) == len(row["labels"]) == 30


def test_example_without_chain_has_prompt_but_no_sft_sequence(tiny_model_dir: Path) -> None:
    tokenizer = load_tokenizer(str(tiny_model_dir))
    row = tokenize_examples(
        [MathExample(id="t", question="q?", answer="1")], tokenizer, CotFormat.NCOT, 64, 64
    )[0]
    assert row["input_ids"] == [] and row["labels"] == [] and len(row["prompt_ids"]) > 0


def test_tokenisation_cache_is_reused(tiny_model_dir: Path, tmp_path: Path) -> None:
    tokenizer = load_tokenizer(str(tiny_model_dir))
    examples = [MathExample(id="a", question="q?", answer="1", cot="c")]
    tokenize_examples(examples, tokenizer, CotFormat.NCOT, 64, 64, cache_dir=tmp_path)
    cached = list(tmp_path.glob("tokens-*.arrow"))
    assert len(cached) == 1
    tokenize_examples(examples, tokenizer, CotFormat.NCOT, 64, 64, cache_dir=tmp_path)
    assert list(tmp_path.glob("tokens-*.arrow")) == cached
    tokenize_examples(examples, tokenizer, CotFormat.NCOT, 32, 64, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("tokens-*.arrow"))) == 2


def test_hold_out_is_disjoint_deterministic_and_sized() -> None:
    examples = [MathExample(id=str(i), question=f"q{i}", answer="1") for i in range(100)]
    train, val = hold_out(examples, 0.1, seed=1)
    assert len(val) == 10 and len(train) == 90
    assert {e.id for e in train}.isdisjoint({e.id for e in val})
    assert hold_out(examples, 0.1, seed=1) == (train, val)
    assert hold_out(examples, 0.1, seed=2)[1] != val
    assert len(hold_out(examples, 25, seed=1)[1]) == 25
    with pytest.raises(ValueError, match="val_size"):
        hold_out(examples, 100, seed=1)


def test_collated_tensors_are_int64() -> None:
    batch = collate_sft([{"input_ids": [1], "labels": [1]}], pad_id=0)
    assert all(t.dtype == torch.long for t in batch.values())
