"""Chain-of-thought text formats of the ReFT paper: prompt and target text per example.

Exact strings from the spec (and the official code): the prompt is
``"Question:\\n{question}\\nAnswer reasoning:\\n"``; an N-CoT target is
``"{cot}\\nTherefore, the answer is: {answer}"``; a P-CoT target is a ``def solution():`` program.
EOS is appended by the tokenising code, not here. In evaluation and RL a P-CoT prompt also ends
with the program header, so the model writes only the function body.
"""

from __future__ import annotations

from enum import Enum
from typing import Literal

from reft_lightning.data.example import MathExample

PROMPT_TEMPLATE = "Question:\n{question}\nAnswer reasoning:\n"
"""The prompt of every example; no BOS token is added."""

NCOT_ANSWER_SUFFIX = "\nTherefore, the answer is: {answer}"
"""Appended to the gold N-CoT chain to form the target."""


class CotFormat(str, Enum):
    """How a solution is written: natural language (N-CoT) or a Python program (P-CoT)."""

    NCOT = "ncot"
    PCOT = "pcot"


CotFormatName = Literal["ncot", "pcot"]
"""How configs name a format (YAML: ``cot_format: pcot``)."""


def pcot_header(question: str) -> str:
    """The first lines of every P-CoT program: the signature and the question as docstring."""
    return 'def solution():\n    """' + question + '"""\n'


def prompt_text(example: MathExample, cot_format: CotFormat, for_generation: bool) -> str:
    """The prompt for ``example``.

    Args:
        example: the problem.
        cot_format: N-CoT or P-CoT.
        for_generation: ``True`` for evaluation and RL rollouts; a P-CoT prompt then ends with the
            program header (``pcot_header``). ``False`` for SFT training, where the header is part
            of the target.
    """
    prompt = PROMPT_TEMPLATE.format(question=example.question)
    if for_generation and CotFormat(cot_format) is CotFormat.PCOT:
        prompt += pcot_header(example.question)
    return prompt


def target_text(example: MathExample, cot_format: CotFormat) -> str:
    """The SFT target (without EOS). Raises ``ValueError`` if the example has no gold chain."""
    if example.cot is None:
        raise ValueError(f"example {example.id!r} has no chain of thought; it cannot be an SFT target")
    cot = example.cot.strip()
    if CotFormat(cot_format) is CotFormat.NCOT:
        return cot + NCOT_ANSWER_SUFFIX.format(answer=example.answer)
    return cot


def reward_model_text(example: MathExample, completion: str, cot_format: CotFormat) -> str:
    """What a reward model reads (spec: ``"Question:\\n{q}\\nAnswer reasoning:\\n{completion}"``): the
    generation prompt (with the P-CoT program header) followed by the sampled completion."""
    return prompt_text(example, cot_format, for_generation=True) + completion
