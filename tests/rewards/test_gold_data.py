"""Done-when checks on the real data: every gold P-CoT program and N-CoT target yields its answer."""

from __future__ import annotations

import json
import re
from pathlib import Path

from reft_lightning.data.example import MathExample
from reft_lightning.data.formats import CotFormat, target_text
from reft_lightning.rewards import AnswerReward, ProgramReward


def _reft_examples(path: Path) -> list[MathExample]:
    records = json.loads(path.read_text())
    return [
        MathExample(r["item_id"], r["question"].strip(), r["answer_value"].strip(), r["answer_cot"])
        for r in records
    ]


def test_all_svamp_gold_programs_return_their_answer(shared_data: Path) -> None:
    examples = _reft_examples(shared_data / "reft" / "svamp_python_sdp.json")
    assert len(examples) == 3043
    reward = ProgramReward(add_header=False, timeout_s=10.0, workers=2)
    try:
        output = reward([e.cot or "" for e in examples], examples)
    finally:
        reward.close()
    misses = [(e.id, a, e.answer) for e, a, ok in zip(examples, output.answers, output.correct) if not ok]
    assert misses == []
    assert all(abs(a - float(e.answer)) <= 1e-2 for a, e in zip(output.answers, examples))  # type: ignore[operator]


def test_svamp_ncot_gold_targets_extract_to_their_answers(shared_data: Path) -> None:
    examples = _reft_examples(shared_data / "reft" / "svamp_nl.json")
    assert len(examples) == 3076
    targets = [target_text(e, CotFormat.NCOT) for e in examples]
    assert all(t.endswith(f"\nTherefore, the answer is: {e.answer}") for t, e in zip(targets, examples))
    output = AnswerReward()(targets, examples)
    assert all(output.correct)
    assert all(a == float(e.answer) for a, e in zip(output.answers, examples))


def test_gsm8k_ncot_gold_targets_extract_to_their_answers(shared_data: Path) -> None:
    examples = []
    for line in (shared_data / "gsm8k" / "train.jsonl").read_text().splitlines():
        record = json.loads(line)
        chain, _, answer = record["answer"].partition("#### ")
        chain = re.sub(r"<<[^>]*>>", "", chain)
        examples.append(
            MathExample(f"gsm8k_{len(examples)}", record["question"], answer.replace(",", "").strip(), chain)
        )
    assert len(examples) == 7473
    targets = [target_text(e, CotFormat.NCOT) for e in examples]
    assert not any("<<" in t for t in targets)
    output = AnswerReward()(targets, examples)
    assert all(output.correct)
    assert all(a == float(e.answer) for a, e in zip(output.answers, examples))
