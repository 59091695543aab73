"""Done-when checks on the real data: every gold P-CoT program and N-CoT target yields its answer."""

from __future__ import annotations

import json
import re
from pathlib import Path

from reft_lightning.data.example import MathExample
from reft_lightning.data.formats import CotFormat, target_text
from reft_lightning.data.sources_choices import options_from_question
from reft_lightning.data.synthetic import as_multiple_choice, generate_problems
from reft_lightning.rewards import AnswerReward, ChoiceReward, ProgramReward


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


def test_synthetic_multiple_choice_gold_chains_choose_and_reason_to_the_right_option() -> None:
    numeric = generate_problems(300, seed=3)
    examples = as_multiple_choice(numeric, seed=3)
    assert all(options_from_question(e.question) == e.choices for e in examples)  # as a reader parses it
    assert all(len(set(e.choices or ())) == 5 and e.choices[ord(e.answer) - ord("a")] == n.answer
               for e, n in zip(examples, numeric))  # fmt: skip
    letters = [e.answer for e in examples]
    assert len(set(letters)) == 5 and max(letters.count(x) for x in "abcde") < 0.3 * len(letters)
    output = ChoiceReward()([target_text(e, CotFormat.NCOT) for e in examples], examples)
    assert all(output.correct) and output.metrics["guessed_fraction"] == 0.0
    # the same letters after the reasoning of another problem: right, and counted as guessed
    shifted = [target_text(e, CotFormat.NCOT).rsplit("\n", 1)[0] for e in examples[1:] + examples[:1]]
    hacked = [f"{chain}\nTherefore, the answer is: {e.answer}" for chain, e in zip(shifted, examples)]
    output = ChoiceReward()(hacked, examples)
    assert all(output.correct) and output.metrics["guessed_of_correct"] > 0.9
