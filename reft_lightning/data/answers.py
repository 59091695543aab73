"""Answer extraction and comparison, as the ReFT spec defines them.

Pure string functions: no model, no tensors. Every function accepts arbitrary model output and
never raises on it.
"""

from __future__ import annotations

import math
import re

NCOT_TRIGGER = "Therefore, the answer is:"
"""The N-CoT answer trigger; the answer is the text after its last occurrence."""

NUMERIC_TOLERANCE = 1e-2
"""Absolute tolerance of the numeric comparison (spec: ``|pred - gold| <= 1e-2``)."""


def extract_after_trigger(text: str, trigger: str = NCOT_TRIGGER) -> str | None:
    """Return the stripped text after the last ``trigger`` in ``text``, or ``None`` if absent."""
    position = text.rfind(trigger)
    if position < 0:
        return None
    return text[position + len(trigger) :].strip()


def parse_number(text: str | None) -> float | None:
    """Parse a numeric answer: commas removed, surrounding space stripped, finite floats only.

    ``"1,234.5"`` -> ``1234.5``; ``"18."`` -> ``18.0``; ``"18 dollars"``, ``"nan"``, ``"inf"`` -> ``None``.
    """
    if text is None:
        return None
    cleaned = text.replace(",", "").strip()
    if not cleaned or len(cleaned) > 64:
        return None
    try:
        value = float(cleaned)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def numbers_match(predicted: float | None, gold: float, tolerance: float = NUMERIC_TOLERANCE) -> bool:
    """``True`` when ``predicted`` is within ``tolerance`` of ``gold`` (``None`` never matches)."""
    return predicted is not None and abs(predicted - gold) <= tolerance


def normalize_choice(text: str | None) -> str | None:
    """Normalise a multiple-choice answer as the official code does: lower case, quotes removed,
    stripped. Returns ``None`` for missing or empty text."""
    if text is None:
        return None
    cleaned = text.lower().replace('"', "").replace("'", "").strip()
    return cleaned or None


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def last_number(text: str) -> float | None:
    """The last number written in ``text`` (``"so 8 + 52 = 60 marbles."`` -> ``60.0``), or ``None``."""
    for match in reversed(_NUMBER.findall(text)):
        value = parse_number(match)
        if value is not None:
            return value
    return None
