"""The bench's log readers: curves of a ReFT run and of an SFT run from Lightning's CSV log."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from bench.runs import epoch_curve, last_metric, metric_rows, reft_curves

KEYS = ["step", "train/score", "train/accuracy", "train/kl", "time/rollout", "time/optimise", "val/accuracy"]


def _write_log(run: Path, version: int, rows: list[dict[str, object]]) -> None:
    folder = run / "csv" / f"version_{version}"
    folder.mkdir(parents=True)
    with (folder / "metrics.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=KEYS)
        writer.writeheader()
        writer.writerows(rows)


def test_reft_curves_count_iterations_and_training_minutes(tmp_path: Path) -> None:
    _write_log(tmp_path, 0, [])  # an older version must be ignored
    _write_log(
        tmp_path,
        10,  # sorted numerically: version_10 is newer than version_2
        [
            {"step": 2, "train/score": 0.5, "train/accuracy": 0.25, "train/kl": 1.0, "time/rollout": 30,
             "time/optimise": 30},
            {"step": 4, "train/score": 0.7, "train/accuracy": 0.5, "train/kl": 2.0, "time/rollout": 60,
             "time/optimise": 0},
            {"step": 4, "val/accuracy": 0.4},
            {"step": 6, "train/score": 0.9, "train/accuracy": 0.75, "train/kl": 3.0, "time/rollout": 90,
             "time/optimise": 90},
            {"step": 6, "val/accuracy": 0.45},
        ],
    )  # fmt: skip
    _write_log(tmp_path, 2, [{"step": 1, "val/accuracy": 0.99}])
    train, val = reft_curves(metric_rows(tmp_path))
    assert [t["train/score"] for t in train] == [0.5, 0.7, 0.9]
    assert [t["minutes"] for t in train] == pytest.approx([1.0, 2.0, 5.0])
    assert val == [(2, 0.4), (3, 0.45)]
    assert last_metric(tmp_path, "val/accuracy") == 0.45


def test_epoch_curve_and_missing_metric(tmp_path: Path) -> None:
    _write_log(
        tmp_path,
        0,
        [{"step": 9, "val/accuracy": 0.3}, {"step": 9, "train/score": 1}, {"step": 19, "val/accuracy": 0.6}],
    )
    assert epoch_curve(metric_rows(tmp_path)) == [0.3, 0.6]
    with pytest.raises(SystemExit, match="test/accuracy was never logged"):
        last_metric(tmp_path, "test/accuracy")
    with pytest.raises(SystemExit, match="no CSV log"):
        metric_rows(tmp_path / "missing")


def test_dip_statistics_find_the_lowest_ten_iteration_window() -> None:
    from bench.runs import dip_statistics

    curve = [0.8] * 20 + [0.5] * 10 + [0.7] * 70  # 100 iterations, dip at 21-30
    stats = dip_statistics(curve + [0.0] * 50)  # iterations past 100 are ignored
    assert stats == pytest.approx({"first10": 0.8, "min10": 0.5, "last10": 0.7})
    short = dip_statistics([0.2, 0.4])
    assert short["first10"] == pytest.approx(0.3) and short["min10"] == pytest.approx(0.3)
    assert short["last10"] != short["last10"]  # NaN


def test_block_means_average_consecutive_blocks_within_the_first_iterations() -> None:
    from bench.runs import block_means

    curve = [0.4] * 25 + [0.6] * 25 + [0.2] * 10 + [0.3] * 10  # 70 iterations: the last block has 20
    assert block_means(curve) == pytest.approx([0.4, 0.6, 0.25])
    assert block_means(curve + [0.9] * 40, block=50) == pytest.approx(
        [0.5, (10 * 0.2 + 10 * 0.3 + 30 * 0.9) / 50]
    )
