"""Raw records from JSON arrays, JSONL and CSV files, each knowing where it came from.

The readers in ``data/sources.py`` turn these into :class:`MathExample`. Every problem found here or
there is raised as :class:`DataFormatError`, whose message names the file, the place in it (``:17`` is
the 1-based line of a JSONL or CSV file, ``[3]`` the 0-based index in a JSON array or dataset) and the
field, e.g. ``data/x.jsonl:17: field 'answer': not a number: 'abc'``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reft_lightning.data.answers import normalize_choice, parse_number
from reft_lightning.data.example import MathExample

_MISSING: Any = object()


class DataFormatError(ValueError):
    """A data file or dataset that cannot be read as math problems.

    Attributes ``source`` (file path or dataset name), ``location`` (``":17"``, ``"[3]"`` or ``""``)
    and ``field`` (``None`` when the whole record or file is at fault) locate the problem.
    """

    def __init__(self, source: str, message: str, *, location: str = "", field: str | None = None) -> None:
        self.source = source
        self.location = location
        self.field = field
        where = f"{source}{location}"
        prefix = f"{where}: field '{field}'" if field is not None else where
        super().__init__(f"{prefix}: {message}")


@dataclass(frozen=True)
class RawRecord:
    """One record (a JSON object or CSV row) and its place in the source, for error messages."""

    source: str
    """File path as given by the caller, or ``name:split`` for a Hugging Face dataset."""
    location: str
    """``":<line>"`` (1-based line, JSONL and CSV) or ``"[<index>]"`` (0-based, JSON arrays, datasets)."""
    index: int
    """0-based position of the record among all records of the source (blank lines skipped)."""
    fields: Mapping[str, Any]

    def error(self, field: str | None, message: str) -> DataFormatError:
        """A :class:`DataFormatError` located at this record (and ``field``, if given)."""
        return DataFormatError(self.source, message, location=self.location, field=field)

    def get(self, field: str) -> Any:
        """The raw value of ``field``; a missing field or a JSON ``null`` is an error."""
        value = self.fields.get(field)
        if value is None:
            present = ", ".join(repr(key) for key in self.fields)
            raise self.error(field, f"missing (fields present: {present})")
        return value

    def text(self, field: str, *, required: bool = True) -> str | None:
        """``field`` as stripped, non-empty text; ``None`` when absent and not ``required``."""
        if not required and self.fields.get(field) is None:
            return None
        value = self.get(field)
        if not isinstance(value, str):
            raise self.error(field, f"expected text, got {type(value).__name__}: {value!r}")
        if not value.strip():
            raise self.error(field, "empty text")
        return value.strip()

    def answer_text(self, field: str) -> str:
        """``field`` as answer text: stripped string or JSON number written out (``51.0`` -> ``"51.0"``)."""
        value = self.get(field)
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise self.error(field, f"expected text or a number, got {type(value).__name__}: {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise self.error(field, f"not a finite number: {value!r}")
        text = value.strip() if isinstance(value, str) else repr(value)
        if not text:
            raise self.error(field, "empty text")
        return text

    def number(self, field: str, value: str = _MISSING) -> str:
        """A numeric answer as normalised text (commas removed, stripped): ``"1,000"`` -> ``"1000"``.

        ``value`` is the text to check when it was cut out of ``field`` (GSM8K's ``#### 18``);
        by default the whole field is the answer.
        """
        raw = (self.answer_text(field) if value is _MISSING else value).strip()
        text = raw.replace(",", "").strip()
        if parse_number(text) is None:
            raise self.error(field, f"not a number: {raw!r}")
        return text

    def letter(self, field: str, choices: tuple[str, ...]) -> str:
        """A multiple-choice answer: one letter ``a``, ``b``, ... naming one of ``choices``, lower case."""
        raw = self.answer_text(field)
        letters = "abcdefghijklmnopqrstuvwxyz"[: len(choices)]
        letter = normalize_choice(raw)
        if letter is None or len(letter) != 1 or letter not in letters:
            raise self.error(field, f"expected one letter of {letters!r}, got {raw!r}")
        return letter


def decode_utf8(path: Path) -> str:
    """The text of ``path``, which must be UTF-8; newlines are kept as written (``\\r\\n`` too).

    Raises :class:`DataFormatError` naming the file, the 1-based line and the byte offset of the
    first byte that is not UTF-8, instead of a bare ``UnicodeDecodeError``.
    """
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataFormatError(
            str(path),
            f"not UTF-8 text: byte 0x{data[exc.start]:02x} at byte offset {exc.start} ({exc.reason}); "
            f"save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)",
            location=f":{line}",
        ) from exc


def _read_text(path: Path) -> str:
    text = decode_utf8(path)
    if not text.strip():
        raise DataFormatError(str(path), "empty file")
    return text


def _as_object(record: RawRecord, value: Any) -> RawRecord:
    if not isinstance(value, dict):
        raise record.error(None, f"expected a JSON object, got {type(value).__name__}")
    return record


def load_json_array(path: Path) -> list[RawRecord]:
    """Records of a file holding one JSON array of objects; locations are ``[index]``."""
    source = str(path)
    text = _read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFormatError(
            source, f"invalid JSON: {exc.msg} (column {exc.colno})", location=f":{exc.lineno}"
        ) from exc
    if not isinstance(data, list):
        raise DataFormatError(source, f"expected a JSON array of objects, got {type(data).__name__}")
    if not data:
        raise DataFormatError(source, "no records (empty array)")
    return [_as_object(RawRecord(source, f"[{i}]", i, item), item) for i, item in enumerate(data)]


def load_jsonl(path: Path) -> list[RawRecord]:
    """Records of a JSONL file (one object per line, blank lines skipped); locations are ``:line``."""
    source = str(path)
    records: list[RawRecord] = []
    for line_number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        location = f":{line_number}"
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataFormatError(
                source, f"invalid JSON: {exc.msg} (column {exc.colno})", location=location
            ) from exc
        records.append(_as_object(RawRecord(source, location, len(records), value), value))
    return records


def load_csv(path: Path) -> list[RawRecord]:
    """Rows of a CSV file with a header line; locations are the 1-based line where a row starts."""
    source = str(path)
    records: list[RawRecord] = []
    reader = csv.DictReader(io.StringIO(decode_utf8(path), newline=""))
    if reader.fieldnames is None:
        raise DataFormatError(source, "empty file")
    lines_read = reader.line_num
    for row in reader:
        records.append(RawRecord(source, f":{lines_read + 1}", len(records), row))
        lines_read = reader.line_num
    if not records:
        raise DataFormatError(source, "no data rows (header only)")
    return records


def build_examples(
    records: Iterable[RawRecord], build: Callable[[RawRecord], MathExample], id_field: str
) -> list[MathExample]:
    """Apply ``build`` to every record, refusing a repeated id (reported against ``id_field``)."""
    first_seen: dict[str, str] = {}
    examples: list[MathExample] = []
    for record in records:
        example = build(record)
        if example.id in first_seen:
            raise record.error(id_field, f"duplicate id {example.id!r} (first at {first_seen[example.id]})")
        first_seen[example.id] = f"{record.source}{record.location}"
        examples.append(example)
    return examples
