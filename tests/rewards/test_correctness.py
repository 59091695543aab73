"""Built-in rewards: program assembly, ProgramReward, ChoiceReward and WeightedSum scores."""

from __future__ import annotations

import math
import pickle
from collections.abc import Iterator

import pytest

from reft_lightning.data.example import MathExample
from reft_lightning.rewards import AnswerReward, ChoiceReward, ProgramReward, WeightedSum
from reft_lightning.rewards.correctness import PCOT_PRELUDE, build_program

QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have?"
NUMERIC = MathExample(id="t_0", question=QUESTION, answer="7")
CHOICE = MathExample(id="m_0", question="pick\na ) 1 , b ) 2", answer="b", choices=("1", "2"))


@pytest.fixture(scope="module")
def program_reward() -> Iterator[ProgramReward]:
    reward = ProgramReward(timeout_s=1.0, workers=1)
    yield reward
    reward.close()


def test_build_program_adds_header_and_prelude_and_cuts_at_first_blank_line() -> None:
    body = "    a = 3\n    return a + 4\n\nprint('after the blank line')\n"
    program = build_program(body, QUESTION)
    expected = PCOT_PRELUDE + 'def solution():\n    """' + QUESTION + '"""\n    a = 3\n    return a + 4'
    assert program == expected
    assert build_program("def solution():\n    return 1", QUESTION, add_header=False) == (
        PCOT_PRELUDE + "def solution():\n    return 1"
    )


def test_program_reward_scores_the_three_outcomes(program_reward: ProgramReward) -> None:
    completions = [
        "    return 3 + 4",  # correct
        "    return 7.004",  # within 1e-2
        "    return 8",  # wrong number: partial
        "    return '7'",  # numeric string: parsed
        "    return 'seven'",  # not a number: no answer
        "    raise ValueError",  # no answer
        "    return math.sqrt(49) + sympy.Integer(0)",  # prelude imports
    ]
    output = program_reward(completions, [NUMERIC] * len(completions))
    assert output.correct == [True, True, False, True, False, False, True]
    assert output.scores == [1.0, 1.0, 0.1, 1.0, 0.0, 0.0, 1.0]
    assert output.answers[2] == 8.0 and output.answers[4] is None
    assert math.isclose(output.metrics["error_fraction"], 1 / 7)  # only the exception returns no value
    assert output.metrics["timeout_fraction"] == 0.0


def test_program_reward_compares_letters_on_multiple_choice(program_reward: ProgramReward) -> None:
    output = program_reward(["    return ' B'", "    return 'a'", "    return 2"], [CHOICE] * 3)
    assert output.correct == [True, False, False]
    assert output.answers == ["b", "a", None]


def test_program_reward_scores_are_configurable_and_pickling_drops_the_pool() -> None:
    reward = ProgramReward(correct=2.0, partial=0.5, wrong=-1.0, timeout_s=1.0, workers=1)
    try:
        clone = pickle.loads(pickle.dumps(reward))
        assert clone.executor is not reward.executor and clone.executor.timeout_s == 1.0
        output = clone(["    return 7", "    return 6", "    while True: pass"], [NUMERIC] * 3)
        assert output.scores == [2.0, 0.5, -1.0]
        assert math.isclose(output.metrics["timeout_fraction"], 1 / 3)
        clone.close()
    finally:
        reward.close()


def test_choice_reward_defaults_to_no_partial_reward() -> None:
    completions = ["x\nTherefore, the answer is: B", "Therefore, the answer is: a", "no answer here"]
    output = ChoiceReward()(completions, [CHOICE] * 3)
    assert output.correct == [True, False, False]
    assert output.scores == [1.0, 0.0, 0.0]
    assert output.answers == ["b", "a", None]


def test_choice_reward_official_minimum_gives_every_sample_at_least_a_tenth() -> None:
    completions = ["Therefore, the answer is: b", "Therefore, the answer is: a", "no answer here"]
    assert ChoiceReward(minimum=0.1)(completions, [CHOICE] * 3).scores == [1.0, 0.1, 0.1]


def test_choice_reward_counts_right_letters_whose_reasoning_reaches_another_number() -> None:
    options = ("38", "27.675", "30", "data inadequate", "none of these")
    mcq = MathExample(id="m_1", question="q\na ) 38 , b ) 27.675 , ...", answer="b", choices=options)
    not_numeric = MathExample(id="m_2", question="q\n...", answer="d", choices=options)
    completions = [
        "so 20 + 7.675 = 27.675\nTherefore, the answer is: b",  # right letter, reasoned to it
        "so 20 + 7.68 = 27.68\nTherefore, the answer is: b",  # within the 1e-2 tolerance: reasoned
        "so 20 + 18 = 38\nTherefore, the answer is: b",  # right letter, reasoning says option a: guessed
        "no arithmetic at all\nTherefore, the answer is: b",  # right letter, no number: guessed
        "so 20 + 18 = 38\nTherefore, the answer is: a",  # wrong letter: not counted
        "so 1 + 1 = 2\nTherefore, the answer is: d",  # right letter, option is not a number: not counted
    ]
    output = ChoiceReward()(completions, [mcq] * 5 + [not_numeric])
    assert output.correct == [True, True, True, True, False, True]
    assert math.isclose(output.metrics["guessed_fraction"], 2 / 6)
    assert math.isclose(output.metrics["guessed_of_correct"], 2 / 5)
    assert ChoiceReward()(["Therefore, the answer is: 7"], [NUMERIC]).metrics == {}  # no options: no monitor


def test_choice_reward_runs_programs_when_given_a_program_reward(program_reward: ProgramReward) -> None:
    output = ChoiceReward(program=program_reward)(["    return 'b'", "    return 'c'"], [CHOICE] * 2)
    assert output.correct == [True, False] and output.scores == [1.0, 0.0]


def test_weighted_sum_matches_a_hand_computed_combination() -> None:
    completions = ["Therefore, the answer is: 7", "Therefore, the answer is: 9", "nothing"]
    first = AnswerReward()(completions, [NUMERIC] * 3)
    second = AnswerReward(correct=0.0, partial=-1.0, wrong=-2.0)(completions, [NUMERIC] * 3)
    combined = WeightedSum(
        [AnswerReward(), AnswerReward(correct=0.0, partial=-1.0, wrong=-2.0)], weights=[0.5, 2.0]
    )(completions, [NUMERIC] * 3)
    expected = [0.5 * a + 2.0 * b for a, b in zip(first.scores, second.scores)]
    assert combined.scores == pytest.approx(expected, abs=1e-12)
    assert combined.correct == [True, False, False] and combined.answers == [7.0, 9.0, None]
    assert combined.metrics["1/score"] == pytest.approx(sum(second.scores) / 3)


def test_weighted_sum_rejects_mismatched_weights() -> None:
    with pytest.raises(ValueError):
        WeightedSum([AnswerReward()], weights=[1.0, 2.0])
    with pytest.raises(ValueError):
        WeightedSum([])
