"""A run's Lightning CSV log, read into numbers: every ``csv/version_N/metrics.csv`` of a run
directory (``trainer.default_root_dir``), and the curves of single metrics in it.

``CSVLogger`` writes one row per logging call, with a ``step`` column (the number of training
batches done before the call: ``step + 1`` training steps are done when a row is logged, a PPO
iteration being one step of ReFT) and an empty cell for each metric the call did not log. A
resumed run writes a new ``version_N`` folder; its rows follow the earlier versions'.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

LOG_PATTERN = "csv/version_*/metrics.csv"
"""Where a run directory holds its CSV log (the ``CSVLogger`` that ``reft`` adds, ``name="csv"``)."""
STEP = "step"
"""The column of the training batches done before a row was logged."""
TIME_PREFIX = "time/"
"""Columns of the seconds each step of a training iteration took (``stages/timing.py``)."""
_VERSION = re.compile(r"version_(\d+)")

MetricRow = dict[str, float]
"""One logged row: column name -> value; the columns the row left empty are absent."""


@dataclass(frozen=True)
class Curve:
    """The logged values of one metric of a run, in logging order; the three lists have one entry
    per logged value."""

    steps: list[int]
    """Training steps done when each value was logged (ReFT: PPO iterations)."""
    minutes: list[float]
    """Training minutes spent when each value was logged (:func:`training_minutes`)."""
    values: list[float]
    """The values, in the metric's own unit (accuracies as fractions in [0, 1])."""


def metric_files(run: Path) -> list[Path]:
    """The ``metrics.csv`` of every ``csv/version_N`` folder of ``run``, in increasing ``N``.

    Raises:
        SystemExit: ``run`` is not a directory, or holds no such file (the message names ``run``
            and what was expected).
    """
    expected = f"a run directory (trainer.default_root_dir) holding {LOG_PATTERN}"
    if not run.is_dir():
        raise SystemExit(f"no CSV log under {run}: no such directory; expected {expected}")
    versions = {}
    for path in run.glob(LOG_PATTERN):
        match = _VERSION.fullmatch(path.parent.name)
        if match:
            versions[int(match.group(1))] = path
    if not versions:
        raise SystemExit(
            f"no CSV log under {run}: expected {LOG_PATTERN} there (written by reft fit / validate / test)"
        )
    return [versions[number] for number in sorted(versions)]


def read_metrics(path: Path) -> list[MetricRow]:
    """The rows of one ``metrics.csv``, every non-empty cell a float.

    Raises:
        SystemExit: a cell is not a number (named ``file:line:column``), a row has more or fewer
            cells than the header, or a row has no step.
    """
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        if header and STEP not in header:
            raise SystemExit(f"{path}:1: no {STEP!r} column: not a Lightning CSVLogger metrics.csv")
        return [_row(header, cells, f"{path}:{reader.line_num}") for cells in reader]


def _row(header: list[str], cells: list[str], where: str) -> MetricRow:
    """One row of a ``metrics.csv`` as numbers; ``where``: ``file:line``, for the errors."""
    if len(cells) != len(header):
        raise SystemExit(f"{where}: {len(cells)} cells where the header has {len(header)}")
    row = {}
    for column, (name, cell) in enumerate(zip(header, cells), start=1):
        if not cell:
            continue
        try:
            row[name] = float(cell)
        except ValueError:
            raise SystemExit(f"{where}:{column}: {name}: {cell!r} is not a number") from None
    if STEP not in row:
        raise SystemExit(f"{where}: the {STEP!r} cell is empty")
    return row


def run_metrics(run: Path) -> list[MetricRow]:
    """The rows of every version of ``run``'s CSV log (:func:`metric_files`), one after another."""
    return [row for path in metric_files(run) for row in read_metrics(path)]


def has_timing(rows: list[MetricRow]) -> bool:
    """Whether any row holds a ``time/*`` step timing."""
    return any(name.startswith(TIME_PREFIX) for row in rows for name in row)


def training_minutes(rows: list[MetricRow]) -> list[float]:
    """For each row, the training minutes spent so far: the ``time/*`` seconds of that row and of
    every row before it, summed, over 60 (validation is not timed, so not counted; zeros
    throughout when no row is timed)."""
    seconds, minutes = 0.0, []
    for row in rows:
        seconds += sum(value for name, value in row.items() if name.startswith(TIME_PREFIX))
        minutes.append(seconds / 60)
    return minutes


def steps_done(row: MetricRow) -> int:
    """Training steps done when ``row`` was logged (its ``step`` + 1)."""
    return int(row[STEP]) + 1


def curve(rows: list[MetricRow], key: str) -> Curve:
    """Every logged value of the metric ``key`` (empty lists when it was never logged)."""
    timed = zip(rows, training_minutes(rows))
    points = [(steps_done(row), minutes, row[key]) for row, minutes in timed if key in row]
    return Curve(
        steps=[step for step, _, _ in points],
        minutes=[minutes for _, minutes, _ in points],
        values=[value for _, _, value in points],
    )
