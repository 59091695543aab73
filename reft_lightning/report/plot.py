"""The report's PNG: each plotted metric's curve per run, against training steps and against
training minutes, drawn with matplotlib's Agg backend (no display, no pyplot state)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from reft_lightning.report.metrics import MetricRow, curve, has_timing

PLOTTED: dict[str, tuple[str, float]] = {
    "train/score": ("training score (mean terminal reward of the rollouts)", 1.0),
    "train/accuracy": ("training accuracy of the sampled rollouts (%)", 100.0),
    "train/kl": ("KL to the reference (nats per sequence)", 1.0),
    "train/entropy": ("policy entropy (nats per token)", 1.0),
    "train/explained_variance": ("value explained variance", 1.0),
    "val/accuracy": ("validation accuracy, greedy (%)", 100.0),
}
"""Metric -> (panel title, factor from the logged value to the drawn one), in drawing order."""
STEPS_LABEL = "training steps (ReFT: PPO iterations)"
MINUTES_LABEL = "training minutes (sum of time/* step timings)"
PANEL_INCHES = (6.0, 3.2)
"""Width and height of one panel."""
DPI = 100


def plotted_metrics(runs: Iterable[list[MetricRow]]) -> list[str]:
    """The metrics of :data:`PLOTTED` that at least one of ``runs`` (each run's rows) logged, in
    drawing order."""
    logged = {key for rows in runs for row in rows for key in row}
    return [key for key in PLOTTED if key in logged]


def curves_figure(runs: dict[str, list[MetricRow]]) -> Figure:
    """The figure: one row of panels per metric of :func:`plotted_metrics` (at least one), its
    curves against training steps on the left and, when any run is timed, against training minutes
    on the right (untimed runs are left out there). ``runs``: label -> logged rows; each run has
    one colour and one legend entry in every panel where it has values."""
    metrics = plotted_metrics(runs.values())
    timed = any(has_timing(rows) for rows in runs.values())
    columns = 2 if timed else 1
    figure = Figure(figsize=(PANEL_INCHES[0] * columns, PANEL_INCHES[1] * len(metrics)), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(metrics), columns, squeeze=False)
    for panels, key in zip(axes, metrics):
        title, factor = PLOTTED[key]
        for index, (name, rows) in enumerate(runs.items()):
            points = curve(rows, key)
            if not points.values:
                continue
            values = [factor * value for value in points.values]
            sparse = key.startswith("val/") or len(values) == 1  # a lone point needs a marker to show
            style = {"color": f"C{index}", "label": name, "marker": "o" if sparse else None}
            panels[0].plot(points.steps, values, **style)
            if timed and has_timing(rows):
                panels[1].plot(points.minutes, values, **style)
        for panel, label in zip(panels, (STEPS_LABEL, MINUTES_LABEL)):
            _label(panel, title, label)
        panels[0].xaxis.set_major_locator(MaxNLocator(integer=True))
    return figure


def plot_curves(runs: dict[str, list[MetricRow]], path: Path) -> None:
    """Write :func:`curves_figure` of ``runs`` to ``path`` as a PNG of :data:`DPI` dots per inch."""
    curves_figure(runs).savefig(path, dpi=DPI)


def _label(panel: Axes, title: str, x_label: str) -> None:
    panel.set_title(title, fontsize="medium")
    panel.set_xlabel(x_label)
    panel.grid(alpha=0.3)
    if panel.lines:
        panel.legend(fontsize="small")
