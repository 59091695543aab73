"""The one record type every reader produces and every later stage consumes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MathExample:
    """One math word problem with its gold answer.

    Readers in ``data/sources.py`` build these; nothing downstream reads raw files.
    """

    id: str
    """Stable identifier, e.g. ``gsm8k_12`` (the ReFT files' ``item_id``)."""
    question: str
    """The problem text, stripped. For multiple choice it includes the options line."""
    answer: str
    """Gold answer as text: a number such as ``"18"`` or ``"2.5"``, or a letter ``a``-``e``."""
    cot: str | None = None
    """Gold chain of thought: N-CoT prose or a P-CoT program; ``None`` for test-only files."""
    choices: tuple[str, ...] | None = None
    """Multiple-choice options in order (``a`` first), or ``None`` for numeric problems."""
