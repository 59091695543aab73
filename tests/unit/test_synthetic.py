"""Synthetic problems: deterministic, distinct, and every annotated step is correct arithmetic."""

from __future__ import annotations

import re

import pytest

from reft_lightning.data.answers import extract_after_trigger, parse_number
from reft_lightning.data.synthetic import Difficulty, arithmetic_chain_corpus, generate_problems
from reft_lightning.sandbox import ProgramExecutor

EQUATION = re.compile(r"(?<![+\d] )(?<!\d)(\d+) ([-+*]) (\d+) = (\d+)")
SUM = re.compile(r"(\d+(?: \+ \d+)+) = (\d+)")


def _check_equations(text: str) -> int:
    """Assert every ``a op b = c`` and ``a + b + c = d`` in ``text`` is true; return how many."""
    count = 0
    for a, op, b, c in EQUATION.findall(text):
        expected = {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op]
        assert int(c) == expected, f"wrong step {a} {op} {b} = {c} in {text!r}"
        count += 1
    for terms, total in SUM.findall(text):
        assert sum(int(t) for t in terms.split(" + ")) == int(total), text
    return count


def test_same_seed_same_problems_other_seed_other_problems() -> None:
    assert generate_problems(50, seed=3) == generate_problems(50, seed=3)
    assert generate_problems(50, seed=3) != generate_problems(50, seed=4)


def test_problems_are_distinct_and_ids_unique() -> None:
    problems = generate_problems(500, seed=0)
    assert len({p.question for p in problems}) == 500
    assert len({p.id for p in problems}) == 500


def test_every_ncot_step_is_correct_and_the_chain_ends_at_the_answer() -> None:
    for problem in generate_problems(300, seed=1):
        assert _check_equations(problem.cot) >= 1
        last_number = re.findall(r"= (\d+)", problem.cot)[-1]
        assert last_number == problem.answer, problem
        assert int(problem.answer) >= 0


def test_both_reasoning_paths_occur() -> None:
    chains = [p.cot for p in generate_problems(200, seed=2)]
    sequential = sum(c.splitlines()[0].endswith(".") and " starts with " in c for c in chains)
    grouped = sum("In all, " in c for c in chains)
    assert sequential > 40 and grouped > 40


def test_difficulty_knobs_bound_steps_and_numbers() -> None:
    difficulty = Difficulty(min_steps=4, max_steps=4, max_number=9, max_factor=3, operations=("+",))
    for problem in generate_problems(100, seed=5, difficulty=difficulty):
        assert problem.question.count("Then ") == 4
        assert "gives away" not in problem.question and "bags" not in problem.question
        numbers = [int(n) for n in re.findall(r"\d+", problem.question)]
        assert max(numbers) <= 9


def test_invalid_difficulty_is_rejected() -> None:
    with pytest.raises(ValueError):
        Difficulty(min_steps=3, max_steps=2)
    with pytest.raises(ValueError):
        Difficulty(operations=("/",))


def test_pcot_programs_return_the_answer_in_the_sandbox() -> None:
    problems = generate_problems(40, seed=6, cot_format="pcot")
    with ProgramExecutor(timeout_s=5.0, memory_mb=512, workers=2) as executor:
        results = executor.run([p.cot for p in problems])
    for problem, result in zip(problems, results, strict=True):
        assert result.value == float(problem.answer), (problem.cot, result)


def test_ncot_targets_extract_to_the_answer() -> None:
    for problem in generate_problems(50, seed=7):
        text = problem.cot + "\nTherefore, the answer is: " + problem.answer
        assert parse_number(extract_after_trigger(text)) == float(problem.answer)


def test_arithmetic_corpus_has_only_true_equations_and_no_words() -> None:
    documents = arithmetic_chain_corpus(200, seed=0)
    assert documents == arithmetic_chain_corpus(200, seed=0)
    for document in documents:
        assert _check_equations(document) >= 2
        assert not re.search(r"[A-Za-z]", document)
