"""MathQA multiple-choice options: the options line at the end of a question, parsed into choices.

The ReFT files write the five options on the question's last line, ``a ) 38 , b ) 27.675 , c ) 30 ,
d ) data inadequate , e ) none of these``. A few records instead carry a Python list literal
(``['a ) 12', 'b ) 15', ...]``), and some repeat the marker (``a ) a ) 2``); both are accepted.
"""

from __future__ import annotations

import ast
import re

CHOICE_LETTERS = "abcde"
"""MathQA's option letters, in order; the gold answer is one of them."""

_FIRST_MARKER = re.compile(r"a\s*\)\s*")


def _marker(letter: str) -> re.Pattern[str]:
    """The separator before option ``letter`` inside an options line: ``" , b ) "``."""
    return re.compile(rf"\s*,\s*{letter}\s*\)\s*")


def _option_text(letter: str, raw: str) -> str:
    """One option's text with a repeated ``"{letter} ) "`` marker removed; empty text is an error."""
    text = re.sub(rf"^{letter}\s*\)\s*", "", raw.strip()).strip()
    if not text:
        raise ValueError(f"option {letter!r} is empty")
    return text


def _split_inline(line: str) -> list[str]:
    """``"a ) x , b ) y , ..."`` -> ``["x", "y", ...]`` (texts still raw), one per letter a-e."""
    first = _FIRST_MARKER.match(line)
    if first is None:
        raise ValueError(f"options line does not start with 'a )': {line!r}")
    texts: list[str] = []
    start = first.end()
    for letter in CHOICE_LETTERS[1:]:
        found = _marker(letter).search(line, start)
        if found is None:
            raise ValueError(f"options line has no option {letter!r}: {line!r}")
        texts.append(line[start : found.start()])
        start = found.end()
    texts.append(line[start:])
    return texts


def _split_list_literal(line: str) -> list[str]:
    """``"['a ) x', 'b ) y', ...]"`` -> ``["x", "y", ...]`` (raw texts); letters a-e in order."""
    try:
        items = ast.literal_eval(line)
    except (ValueError, SyntaxError) as exc:
        raise ValueError(f"options line is not a valid list: {line!r}") from exc
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise ValueError(f"options list must hold strings: {line!r}")
    if len(items) != len(CHOICE_LETTERS):
        raise ValueError(f"expected {len(CHOICE_LETTERS)} options, got {len(items)}: {line!r}")
    texts: list[str] = []
    for letter, item in zip(CHOICE_LETTERS, items):
        found = re.match(rf"\s*{letter}\s*\)\s*", item)
        if found is None:
            raise ValueError(f"option {item!r} does not start with '{letter} )'")
        texts.append(item[found.end() :])
    return texts


def parse_options_line(line: str) -> tuple[str, ...]:
    """The five option texts of a MathQA options line, ``a`` first.

    Raises ``ValueError`` (with the line quoted) when the line does not hold options ``a``-``e``.
    """
    line = line.strip()
    raw = _split_list_literal(line) if line.startswith("[") else _split_inline(line)
    return tuple(_option_text(letter, text) for letter, text in zip(CHOICE_LETTERS, raw))


def options_from_question(question: str) -> tuple[str, ...]:
    """Parse the options line that ends a MathQA question (the text after its last newline)."""
    body, newline, line = question.rpartition("\n")
    if not newline or not body.strip():
        raise ValueError("no options line: expected the question, a newline, then 'a ) .. , b ) .. , ..'")
    return parse_options_line(line)
