"""Prediction files read back, and offline self-training data built from hand-made predictions."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from reft_lightning.data.example import MathExample
from reft_lightning.data.formats import CotFormat, pcot_header, target_text
from reft_lightning.data.predictions import read_predictions, sample_chain, self_training_examples
from reft_lightning.data.sources_raw import DataFormatError


def _sample(text: str, correct: bool, answer: Any = 1.0, score: float | None = None) -> dict[str, Any]:
    return {"text": text, "answer": answer, "score": score if score is not None else float(correct),
            "correct": correct}  # fmt: skip


def _record(qid: str, samples: list[dict[str, Any]], split: str = "train") -> dict[str, Any]:
    greedy = _sample("greedy", False, None, 0.0)
    return {
        "id": qid,
        "split": split,
        "question": f"q {qid}",
        "gold": "3",
        "greedy": greedy,
        "samples": samples,
    }


def _write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_reads_records_in_order_and_per_process_files_in_rank_order(tmp_path: Path) -> None:
    _write(tmp_path / "predictions.rank1.jsonl", [_record("b", [_sample("x", True, "c")])])
    _write(tmp_path / "predictions.rank0.jsonl", [_record("a", []), _record("c", [])])
    records = read_predictions(tmp_path / "predictions.jsonl")
    assert [r.id for r in records] == ["a", "c", "b"]
    assert records[2].samples[0].answer == "c" and records[2].samples[0].correct
    assert records[0].greedy.answer is None and records[0].question == "q a"


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ({"samples": [{"text": "t", "answer": 1, "score": "high", "correct": True}]}, "samples[0].score"),
        ({"samples": [{"text": "t", "answer": 1, "score": 1.0, "correct": 1}]}, "samples[0].correct"),
        ({"samples": [{"text": 3, "answer": 1, "score": 1.0, "correct": True}]}, "samples[0].text"),
        ({"samples": "none"}, "samples"),
        ({"gold": None}, "gold"),
    ],
)
def test_a_bad_field_is_named_with_file_and_line(tmp_path: Path, line: dict[str, Any], field: str) -> None:
    path = _write(tmp_path / "p.jsonl", [_record("a", []), {**_record("b", []), **line}])
    with pytest.raises(DataFormatError, match=rf"p\.jsonl:2: field '{re.escape(field)}'"):
        read_predictions(path)


def test_other_splits_repeated_ids_and_missing_files_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "p.jsonl", [_record("a", []), _record("b", [], split="test")])
    with pytest.raises(DataFormatError, match=r"p\.jsonl:2: field 'split': 'test': expected .*'train'"):
        read_predictions(path, split="train")
    path = _write(tmp_path / "q.jsonl", [_record("a", []), _record("a", [])])
    with pytest.raises(
        DataFormatError, match=r"q\.jsonl:2: field 'id': question 'a' again \(first at .*q\.jsonl:1\)"
    ):
        read_predictions(path)
    with pytest.raises(FileNotFoundError, match="reft predict"):
        read_predictions(tmp_path / "absent.jsonl")


TRAIN = [
    MathExample("a", "Tom has 1 apple and gets 2. How many?", "3", "1 + 2 = 3"),
    MathExample("b", "Ann has 5 and gives 2. How many?", "3", "5 - 2 = 3"),
    MathExample("c", "No samples for this one?", "4", "2 + 2 = 4"),
]
TRIGGER = "\nTherefore, the answer is: 3"


def test_self_training_keeps_gold_then_distinct_correct_samples_up_to_the_cap(tmp_path: Path) -> None:
    samples_a = [
        _sample("1 + 2 = 3" + TRIGGER, True),  # the gold chain again: not added
        _sample("2 + 1 = 3" + TRIGGER, True),  # kept (sample 1)
        _sample("1 + 2 = 4\nTherefore, the answer is: 4", False, 4.0, 0.1),  # wrong
        _sample("2 +  1 =\n3" + TRIGGER, True),  # sample 1 up to whitespace: not added
        _sample("1 plus 2 is 3" + TRIGGER, True),  # kept (sample 4)
        _sample("3 = 3" + TRIGGER, True),  # past the cap of 2
    ]
    samples_b = [
        _sample("", True),
        _sample("5 - 2 = 3.0" + TRIGGER + ".0", True),
    ]  # an empty chain is skipped
    path = _write(tmp_path / "p.jsonl", [_record("b", samples_b), _record("a", samples_a)])
    examples = self_training_examples(TRAIN, read_predictions(path), CotFormat.NCOT, max_per_question=2)
    assert [e.id for e in examples] == ["a", "a/sample1", "a/sample4", "b", "b/sample1", "c"]
    assert [e.cot for e in examples[1:3]] == ["2 + 1 = 3", "1 plus 2 is 3"]
    # the target rebuilt from a sample ends with the gold answer, as a gold chain's does
    assert target_text(examples[4], CotFormat.NCOT) == "5 - 2 = 3.0\nTherefore, the answer is: 3"
    assert all(e.answer == "3" and e.question == TRAIN[0].question for e in examples[:3])
    assert [e.id for e in self_training_examples(TRAIN, read_predictions(path), CotFormat.NCOT, 0)] == [
        "a",
        "b",
        "c",
    ]


def test_a_pcot_sample_gets_the_program_header_back() -> None:
    question = "How many?"
    body = "    x = 1 + 2\n    return x"
    assert sample_chain(body, question, CotFormat.PCOT) == pcot_header(question) + body
    assert sample_chain("no trigger here ", question, CotFormat.NCOT) == "no trigger here"


def test_predictions_of_questions_outside_the_training_split_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "p.jsonl", [_record("a", []), _record("zz", [])])
    with pytest.raises(ValueError, match=r"data.init_args.train_predictions: 1 questions .*\['zz'\]"):
        self_training_examples(
            TRAIN, read_predictions(path), CotFormat.NCOT, source="data.init_args.train_predictions"
        )
