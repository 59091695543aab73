"""CoT text formats: exact strings from the spec."""

from __future__ import annotations

import pytest

from reft_lightning.data.example import MathExample
from reft_lightning.data.formats import CotFormat, pcot_header, prompt_text, target_text

EXAMPLE = MathExample(id="x_0", question="Ann has 2 pens. How many?", answer="2", cot="She has 2.")


def test_prompt_is_the_papers_template() -> None:
    expected = "Question:\nAnn has 2 pens. How many?\nAnswer reasoning:\n"
    assert prompt_text(EXAMPLE, CotFormat.NCOT, for_generation=False) == expected
    assert prompt_text(EXAMPLE, CotFormat.NCOT, for_generation=True) == expected
    assert prompt_text(EXAMPLE, CotFormat.PCOT, for_generation=False) == expected


def test_pcot_generation_prompt_ends_with_the_program_header() -> None:
    prompt = prompt_text(EXAMPLE, CotFormat.PCOT, for_generation=True)
    header = 'def solution():\n    """Ann has 2 pens. How many?"""\n'
    assert prompt == "Question:\nAnn has 2 pens. How many?\nAnswer reasoning:\n" + header
    assert pcot_header("q") == 'def solution():\n    """q"""\n'


def test_ncot_target_appends_the_answer_trigger() -> None:
    assert target_text(EXAMPLE, CotFormat.NCOT) == "She has 2.\nTherefore, the answer is: 2"
    padded = MathExample(id="x_1", question="q", answer="7", cot="  steps \n")
    assert target_text(padded, "ncot") == "steps\nTherefore, the answer is: 7"


def test_pcot_target_is_the_program_itself() -> None:
    program = MathExample(
        id="p", question="q", answer="1", cot='def solution():\n    """q"""\n    return 1\n'
    )
    assert target_text(program, CotFormat.PCOT) == 'def solution():\n    """q"""\n    return 1'


def test_target_without_a_chain_is_an_error_naming_the_example() -> None:
    with pytest.raises(ValueError, match="x_9"):
        target_text(MathExample(id="x_9", question="q", answer="1"), CotFormat.NCOT)
