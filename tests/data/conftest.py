"""Fixtures for the reader tests: the shared data folder, its SOURCES.txt counts, scratch files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from reft_lightning.data.example import MathExample

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """``../shared/data`` beside the repo; missing data fails the tests (CI clones shared/ there)."""
    assert DATA.is_dir(), f"shared data missing at {DATA} (clone the repo with shared/ beside it)"
    return DATA


@pytest.fixture(scope="session")
def documented_counts(data_dir: Path) -> dict[str, int]:
    """Record counts from the SOURCES.txt tables: ``{path relative to data_dir: count}``.

    Each table has a header line ``file | ... | records ... | ...``; rows whose records cell is a plain
    integer describe files staged on this machine (the absent ReFT training files give ranges instead).
    """
    counts: dict[str, int] = {}
    for sources in sorted(data_dir.glob("*/SOURCES.txt")):
        column = None
        for line in sources.read_text(encoding="utf-8").splitlines():
            cells = [cell.strip() for cell in line.split("|")]
            if cells[0] == "file":
                column = next(i for i, cell in enumerate(cells) if cell.startswith("records"))
            elif column is not None and len(cells) > column and cells[column].isdigit():
                matches = list(sources.parent.rglob(Path(cells[0]).name))
                assert len(matches) == 1, f"{sources}: {cells[0]} found {len(matches)} times"
                counts[matches[0].relative_to(data_dir).as_posix()] = int(cells[column])
    return counts


@pytest.fixture(scope="session")
def read_shared(data_dir: Path) -> Callable[[str, Callable[[Path], list[MathExample]]], list[MathExample]]:
    """``read_shared(name, reader)``: the examples of one shared file, read once per session."""
    cache: dict[str, list[MathExample]] = {}

    def read(name: str, reader: Callable[[Path], list[MathExample]]) -> list[MathExample]:
        if name not in cache:
            cache[name] = reader(data_dir / name)
        return cache[name]

    return read


class ScratchFiles:
    """Writes small input files into a test's ``tmp_path``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def text(self, name: str, text: str) -> Path:
        path = self.root / name
        path.write_text(text, encoding="utf-8")
        return path

    def json(self, name: str, value: object) -> Path:
        return self.text(name, json.dumps(value))

    def jsonl(self, name: str, *records: object) -> Path:
        return self.text(name, "".join(json.dumps(record) + "\n" for record in records))


@pytest.fixture
def files(tmp_path: Path) -> ScratchFiles:
    return ScratchFiles(tmp_path)
