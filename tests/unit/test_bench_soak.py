"""The soak benchmark's memory records and their growth rate (MiB per 1,000 iterations)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench.soak import growth_per_1000, memory_records


def test_growth_is_the_least_squares_slope_after_the_first_record(tmp_path: Path) -> None:
    log = tmp_path / "memory.csv"
    # the first record (warm-up allocations) is left out; then +1 MiB per 100 iterations, with noise
    log.write_text("100,400.0,1.0\n200,500.0,2.0\n300,501.5,3.0\n400,502.0,4.0\n500,503.5,5.0\n")
    records = memory_records(log)
    assert records[0] == (100, 400.0)
    # by hand: x = 200..500 (mean 350), y = 500, 501.5, 502, 503.5 (mean 501.75);
    # cov = (-150)(-1.75) + (-50)(-0.25) + (50)(0.25) + (150)(1.75) = 550, var = 50000
    assert growth_per_1000(records) == pytest.approx(1000 * 550 / 50000)


def test_flat_memory_has_no_growth_and_too_few_records_none() -> None:
    assert growth_per_1000([(100, 900.0), (200, 500.0), (300, 500.0)]) == 0.0
    assert math.isnan(growth_per_1000([(100, 500.0), (200, 500.0)]))
