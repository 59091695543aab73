"""The figures of one run that the report's table shows: training steps, best and final validation
accuracy, and the test figures."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from reft_lightning.report.metrics import MetricRow, curve, steps_done

TRAIN_PREFIX = "train/"
"""Columns logged by training steps (a row holding one is a training row)."""
VAL_ACCURACY = "val/accuracy"
"""Greedy validation accuracy, the figure ``best`` checkpoints are chosen on."""
TEST_ACCURACY = "test/accuracy"
"""Greedy test accuracy."""
TEST_ESTIMATE = re.compile(r"test/(pass|voting|rerank)@(\d+)")
"""Sampled test figures shown as extra columns: ``test/pass@k``, ``test/voting@k``, ``test/rerank@k``."""


@dataclass(frozen=True)
class RunFigures:
    """One row of the table; ``None`` where the run never logged the figure. Accuracies are
    fractions in [0, 1]."""

    name: str
    """The run's label (its directory name)."""
    steps: int | None
    """Training steps done by the last training row (ReFT: PPO iterations)."""
    best_val: float | None
    """The highest validation accuracy (the first one, on a tie: the one a ``best`` checkpoint holds)."""
    best_val_step: int | None
    """Training steps done when ``best_val`` was logged."""
    final_val: float | None
    """The last validation accuracy."""
    test: dict[str, float] = field(default_factory=dict)
    """``test/accuracy`` and each ``test/{pass,voting,rerank}@k`` logged: its last value."""


def is_test_figure(column: str) -> bool:
    """Whether the table shows ``column`` as a test figure."""
    return column == TEST_ACCURACY or TEST_ESTIMATE.fullmatch(column) is not None


def figure_order(column: str) -> tuple[int, str, int]:
    """Sort key of the test columns: accuracy first, then pass@k, voting@k, rerank@k by kind and k."""
    match = TEST_ESTIMATE.fullmatch(column)
    return (0, "", 0) if match is None else (1, match.group(1), int(match.group(2)))


def summarise(name: str, rows: list[MetricRow]) -> RunFigures:
    """The table's figures of the run labelled ``name`` from all its logged ``rows``."""
    training = [steps_done(row) for row in rows if any(key.startswith(TRAIN_PREFIX) for key in row)]
    val = curve(rows, VAL_ACCURACY)
    best = max(range(len(val.values)), key=val.values.__getitem__, default=None)
    return RunFigures(
        name=name,
        steps=training[-1] if training else None,
        best_val=None if best is None else val.values[best],
        best_val_step=None if best is None else val.steps[best],
        final_val=val.values[-1] if val.values else None,
        test={key: value for row in rows for key, value in row.items() if is_test_figure(key)},
    )
