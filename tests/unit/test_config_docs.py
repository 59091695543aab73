"""docs/config_keys.md is generated from the argument dataclasses' attribute docstrings."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from reft_lightning.config_docs import PAGE, attribute_docs, page, table


def test_the_page_is_up_to_date() -> None:
    assert PAGE.read_text() == page(), "run `python -m reft_lightning.config_docs`"


@dataclass(frozen=True)
class _Base:
    alpha: int = 1
    """The first | key."""


@dataclass(frozen=True)
class _Child(_Base):
    beta: tuple[float, float] = (0.5, 2.0)
    """Inherited keys come first,
    and docstrings are joined on one line."""
    gamma: str | None = None


def test_docstrings_are_read_from_the_source_through_the_bases() -> None:
    assert attribute_docs(_Child) == {
        "alpha": "The first | key.",
        "beta": "Inherited keys come first, and docstrings are joined on one line.",
    }
    with pytest.raises(ValueError, match=r"_Child\.gamma has no attribute docstring"):
        table(_Child)


def test_rows_escape_pipes_and_write_defaults_as_yaml() -> None:
    @dataclass(frozen=True)
    class Documented(_Base):
        beta: tuple[float, float] = (0.5, 2.0)
        """Betas."""
        gamma: str | None = None
        """Nothing by default."""

    assert table(Documented).splitlines()[2:] == [
        "| `alpha` | The first \\| key. | `1` |",
        "| `beta` | Betas. | `[0.5, 2.0]` |",
        "| `gamma` | Nothing by default. | `null` |",
    ]
