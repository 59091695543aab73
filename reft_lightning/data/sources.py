"""Readers: source files and Hugging Face datasets -> ``list[MathExample]``.

Formats (docs/data.md has samples): the ReFT paper's JSON arrays, GSM8K's original JSONL, SVAMP's
``SVAMP.json`` and MAWPS+ASDiv-A CSV files, and generic JSON / JSONL / Hugging Face records with field
names given by the caller (from YAML). Every reader checks each record and raises
:class:`DataFormatError` naming the file, line or index, and field; ids must be unique.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reft_lightning.data.answers import normalize_choice
from reft_lightning.data.example import MathExample
from reft_lightning.data.sources_choices import options_from_question, parse_options_line
from reft_lightning.data.sources_raw import (
    DataFormatError,
    RawRecord,
    build_examples,
    load_csv,
    load_json_array,
    load_jsonl,
)

__all__ = [
    "DataFormatError",
    "detect_kind",
    "read_examples",
    "read_gsm8k_jsonl",
    "read_hf_dataset",
    "read_records",
    "read_reft_json",
    "read_svamp_csv",
    "read_svamp_json",
]

REFT_PREFIXES = ("gsm8k", "svamp", "mathqa", "mathqa-numeric")
"""``item_id`` prefixes of the shipped ReFT files; ``mathqa`` is multiple choice, the others numeric."""

_CALCULATOR_ANNOTATION = re.compile(r"<<.*?>>")
_NUMBER_SLOT = re.compile(r"\bnumber(\d+)\b")


def _choices(record: RawRecord, field: str, question: str) -> tuple[str, ...]:
    """Options parsed from the options line ending ``question`` (read from ``field``)."""
    try:
        return options_from_question(question)
    except ValueError as exc:
        raise record.error(field, str(exc)) from exc


def _shipped_prefix(item_id: str) -> str | None:
    """The dataset of a shipped ReFT id (``mathqa_3`` -> ``mathqa``), or ``None`` for any other id."""
    prefix, _, number = item_id.rpartition("_")
    return prefix if prefix in REFT_PREFIXES and number.isdigit() else None


def _is_letter(value: object) -> bool:
    """Whether an ``answer_value`` reads as one option letter (``"b"``, ``"B"``, ``"'c'"``)."""
    letter = normalize_choice(value) if isinstance(value, str) else None
    return letter is not None and len(letter) == 1 and letter.isascii() and letter.isalpha()


def _is_multiple_choice(record: RawRecord, item_id: str) -> bool:
    """A shipped id's dataset sets the answer type (only ``mathqa`` is multiple choice); any other id
    is multiple choice when its ``answer_value`` is one letter, else numeric."""
    prefix = _shipped_prefix(item_id)
    if prefix is not None:
        return prefix == "mathqa"
    return _is_letter(record.get("answer_value"))


def _letter_choices(record: RawRecord, question: str) -> tuple[str, ...]:
    """The options of a record of one's own whose answer is a letter, or an error saying so."""
    try:
        return options_from_question(question)
    except ValueError as exc:
        raise record.error(
            "question",
            f"answer_value {record.get('answer_value')!r} is a letter, so the question's last line must "
            f"list the options 'a ) .. , b ) .. , c ) .. , d ) .. , e ) ..' ({exc}); or give a numeric "
            f"answer_value",
        ) from exc


def read_reft_json(path: str | Path) -> list[MathExample]:
    """The ReFT paper's files, or one's own in their format: a JSON array of ``{item_id, question,
    answer_value[, answer_cot]}``; ``item_id`` is any unique text.

    The answer type: for the shipped datasets' ids (``gsm8k_12``, ``mathqa-numeric_3``, prefixes in
    :data:`REFT_PREFIXES`) the prefix sets it: ``mathqa`` is multiple choice, the others numeric.
    Any other id (``mydata_0``) is multiple choice when ``answer_value`` is one letter, else numeric.
    Multiple choice: the answer is a letter a-e and the question's last line holds the options (kept
    in the question, parsed into ``choices``); numeric: the answer must be a number (commas removed).
    """

    def build(record: RawRecord) -> MathExample:
        item_id = record.text("item_id")
        question = record.text("question")
        cot = record.text("answer_cot", required=False)
        if _is_multiple_choice(record, item_id):
            if _shipped_prefix(item_id) is None:
                choices = _letter_choices(record, question)
            else:
                choices = _choices(record, "question", question)
            return MathExample(item_id, question, record.letter("answer_value", choices), cot, choices)
        return MathExample(item_id, question, record.number("answer_value"), cot)

    return build_examples(load_json_array(Path(path)), build, "item_id")


def read_gsm8k_jsonl(path: str | Path) -> list[MathExample]:
    """GSM8K's original JSONL (``question``, ``answer`` = steps, then ``#### <final answer>``).

    ``answer`` is the text after the last ``####`` (commas removed); ``cot`` is the steps with the
    ``<<48/2=24>>`` calculator annotations removed; ``id`` is ``gsm8k_<i>`` for the i-th record
    (0-based), which matches the ReFT test file's ``item_id``.
    """

    def build(record: RawRecord) -> MathExample:
        question = record.text("question")
        solution = record.text("answer")
        steps, separator, final = solution.rpartition("####")
        if not separator:
            raise record.error("answer", "no '####' before the final answer")
        cot = _CALCULATOR_ANNOTATION.sub("", steps).strip() or None
        return MathExample(f"gsm8k_{record.index}", question, record.number("answer", final), cot)

    return build_examples(load_jsonl(Path(path)), build, "id")


def read_svamp_json(path: str | Path) -> list[MathExample]:
    """SVAMP's ``SVAMP.json``: question = ``Body + " " + Question``, answer = ``Answer``, id = ``ID``."""

    def build(record: RawRecord) -> MathExample:
        question = f"{record.text('Body')} {record.text('Question')}"
        return MathExample(record.text("ID"), question, record.number("Answer"))

    return build_examples(load_json_array(Path(path)), build, "ID")


def _plain_number(record: RawRecord, text: str) -> str:
    """A value from the CSV ``Numbers`` column as written in a question: ``"56.0"`` -> ``"56"``."""
    value = record.number("Numbers", text)
    return value[: value.index(".")] if re.fullmatch(r"-?\d+\.0+", value) else value


def read_svamp_csv(path: str | Path) -> list[MathExample]:
    """SVAMP's ``data/mawps-asdiv-a_svamp/{train,dev}.csv``: ``numberN`` slots in ``Question`` are
    filled from the space-separated ``Numbers`` column; id = ``svamp_<file stem>_<row>`` (0-based)."""
    path = Path(path)

    def build(record: RawRecord) -> MathExample:
        numbers = record.text("Numbers").split()

        def fill(slot: re.Match[str]) -> str:
            position = int(slot.group(1))
            if position >= len(numbers):
                raise record.error("Numbers", f"no value for {slot.group(0)!r} ({len(numbers)} numbers)")
            return _plain_number(record, numbers[position])

        question = _NUMBER_SLOT.sub(fill, record.text("Question"))
        return MathExample(f"svamp_{path.stem}_{record.index}", question, record.number("Answer"))

    return build_examples(load_csv(path), build, "id")


@dataclass(frozen=True)
class FieldMap:
    """Where a generic record keeps each part of a :class:`MathExample` (field names from YAML).

    Without ``id_field`` the id is ``<id_prefix>_<index>``. ``choices_field`` holds a list of option
    texts or a MathQA-style options line; the answer is then a letter. ``numeric`` answers must parse
    as numbers (commas removed); otherwise the stripped text is kept.
    """

    question_field: str = "question"
    answer_field: str = "answer"
    cot_field: str | None = None
    id_field: str | None = None
    choices_field: str | None = None
    numeric: bool = True

    def __post_init__(self) -> None:
        if self.choices_field is not None and self.numeric:
            raise ValueError("choices_field makes the answer a letter: set numeric=False with it")

    def choices(self, record: RawRecord) -> tuple[str, ...] | None:
        """The options of ``record``, or ``None`` without ``choices_field``."""
        if self.choices_field is None:
            return None
        value = record.get(self.choices_field)
        if isinstance(value, str):
            try:
                return parse_options_line(value)
            except ValueError as exc:
                raise record.error(self.choices_field, str(exc)) from exc
        if (
            not isinstance(value, list)
            or len(value) < 2
            or not all(isinstance(v, str) and v.strip() for v in value)
        ):
            raise record.error(
                self.choices_field, f"expected a list of at least 2 option texts, got {value!r}"
            )
        return tuple(v.strip() for v in value)

    def example(self, record: RawRecord, id_prefix: str) -> MathExample:
        """The :class:`MathExample` held by ``record``."""
        choices = self.choices(record)
        if choices is not None:
            answer = record.letter(self.answer_field, choices)
        elif self.numeric:
            answer = record.number(self.answer_field)
        else:
            answer = record.answer_text(self.answer_field)
        return MathExample(
            id=record.answer_text(self.id_field) if self.id_field else f"{id_prefix}_{record.index}",
            question=record.text(self.question_field),
            answer=answer,
            cot=record.text(self.cot_field) if self.cot_field else None,
            choices=choices,
        )

    def build_all(self, records: list[RawRecord], id_prefix: str) -> list[MathExample]:
        """Every record mapped, ids checked for repeats."""
        return build_examples(records, lambda record: self.example(record, id_prefix), self.id_field or "id")


def read_records(
    path: str | Path,
    *,
    question_field: str = "question",
    answer_field: str = "answer",
    cot_field: str | None = None,
    id_field: str | None = None,
    choices_field: str | None = None,
    numeric: bool = True,
) -> list[MathExample]:
    """Generic records: a ``.json`` file (one array of objects) or ``.jsonl`` (one object per line),
    mapped by :class:`FieldMap`; ids default to ``<file stem>_<index>``."""
    path = Path(path)
    loaders: dict[str, Callable[[Path], list[RawRecord]]] = {".json": load_json_array, ".jsonl": load_jsonl}
    if path.suffix not in loaders:
        raise DataFormatError(str(path), "generic records must be a .json array or a .jsonl file")
    fields = FieldMap(question_field, answer_field, cot_field, id_field, choices_field, numeric)
    return fields.build_all(loaders[path.suffix](path), path.stem)


def read_hf_dataset(
    name: str,
    split: str,
    *,
    config: str | None = None,
    data_files: str | list[str] | None = None,
    cache_dir: str | None = None,
    question_field: str = "question",
    answer_field: str = "answer",
    cot_field: str | None = None,
    id_field: str | None = None,
    choices_field: str | None = None,
    numeric: bool = True,
) -> list[MathExample]:
    """A Hugging Face dataset, ``datasets.load_dataset(name, config, split=split, data_files=...,
    cache_dir=...)``, mapped by :class:`FieldMap`; errors name ``name:split[index]``, ids default to
    ``<name>_<split>_<index>``. Hub names download (or read the local HF cache); ``name="json"``,
    ``"csv"`` or ``"parquet"`` with ``data_files`` reads local files."""
    import datasets

    fields = FieldMap(question_field, answer_field, cot_field, id_field, choices_field, numeric)
    dataset = datasets.load_dataset(name, config, split=split, data_files=data_files, cache_dir=cache_dir)
    source = f"{name}:{split}"
    records = [RawRecord(source, f"[{i}]", i, row) for i, row in enumerate(dataset)]
    if not records:
        raise DataFormatError(source, "no records")
    return fields.build_all(records, f"{name.rsplit('/', 1)[-1]}_{split}")


_READERS: dict[str, Callable[[Path], list[MathExample]]] = {
    "reft": read_reft_json,
    "gsm8k": read_gsm8k_jsonl,
    "svamp_json": read_svamp_json,
    "svamp_csv": read_svamp_csv,
    "records": read_records,
}


def detect_kind(path: Path) -> str:
    """The reader for ``path``, from its suffix and the fields of its first record."""
    if path.suffix == ".csv":
        keys = set(load_csv(path)[0].fields)
        if {"Question", "Numbers", "Answer"} <= keys:
            return "svamp_csv"
    elif path.suffix in (".json", ".jsonl"):
        first = (load_json_array if path.suffix == ".json" else load_jsonl)(path)[0].fields
        if {"item_id", "question", "answer_value"} <= first.keys():
            return "reft"
        if {"Body", "Question", "Answer"} <= first.keys():
            return "svamp_json"
        if {"question", "answer"} <= first.keys():
            is_gsm8k = path.suffix == ".jsonl" and "####" in str(first["answer"])
            return "gsm8k" if is_gsm8k else "records"
    raise DataFormatError(
        str(path), f"unrecognised data file; pass one of kind={sorted(_READERS)} (see docs/data.md)"
    )


def read_examples(path: str | Path, kind: str = "auto") -> list[MathExample]:
    """Read ``path`` with the reader ``kind`` (``"reft"``, ``"gsm8k"``, ``"svamp_json"``,
    ``"svamp_csv"``, ``"records"``) or, with ``"auto"``, the one :func:`detect_kind` picks."""
    path = Path(path)
    if kind == "auto":
        kind = detect_kind(path)
    if kind not in _READERS:
        raise ValueError(f"unknown data kind {kind!r}; expected 'auto' or one of {sorted(_READERS)}")
    return _READERS[kind](path)
