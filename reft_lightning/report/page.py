"""The report's Markdown: a title, the runs, the curves' image and the table of figures."""

from __future__ import annotations

from collections.abc import Sequence

from reft_lightning.report.summary import TEST_ACCURACY, RunFigures, figure_order

MISSING = "—"
"""A figure the run never logged (never shown as 0)."""


def percent(value: float | None) -> str:
    """A fraction as ``73.0%`` (one decimal), or :data:`MISSING`."""
    return MISSING if value is None else f"{100 * value:.1f}%"


def count(value: int | None) -> str:
    """A count, or :data:`MISSING`."""
    return MISSING if value is None else str(value)


def figures_table(runs: Sequence[RunFigures]) -> list[str]:
    """The Markdown lines of the table: one row per run; ``test/accuracy`` always has a column,
    each other test figure logged by any run (pass@k, voting@k, rerank@k) one more."""
    extra = sorted({key for run in runs for key in run.test if key != TEST_ACCURACY}, key=figure_order)
    header = ["Run", "Steps", "Best val accuracy", "Best at step", "Final val accuracy", "Test accuracy"]
    header += [f"Test {key.removeprefix('test/')}" for key in extra]
    lines = ["| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
    for run in runs:
        cells = [run.name, count(run.steps), percent(run.best_val), count(run.best_val_step)]
        cells += [percent(run.final_val), *(percent(run.test.get(key)) for key in [TEST_ACCURACY, *extra])]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def report_page(
    title: str, runs: dict[str, str], figures: Sequence[RunFigures], image: str | None, untimed: Sequence[str]
) -> str:
    """The whole page.

    Args:
        title: the page's heading.
        runs: each run's label -> its directory as given.
        figures: the table's rows, in the order of ``runs``.
        image: the PNG's path relative to the page, or ``None`` when no run logged a curve.
        untimed: labels of runs with curves but no ``time/*`` columns, drawn against steps only.
    """
    lines = [f"# {title}", "", "Runs (each one's every `csv/version_*/metrics.csv`, in version order):", ""]
    lines += [f"- `{name}`: `{directory}`" for name, directory in runs.items()]
    lines.append("")
    if image is None:
        lines += ["No run logged a training or validation curve.", ""]
    else:
        lines += [
            f"![Curves]({image})",
            "",
            "Curves against training steps (ReFT: PPO iterations) and against training minutes: the "
            "per-step timings `time/*` summed and accumulated (validation is not timed).",
            "",
        ]
    lines += [f"`{name}` logged no timing columns (`time/*`): drawn against steps only." for name in untimed]
    if untimed:
        lines.append("")
    lines += [
        "Accuracies in percent; best validation accuracy is the highest logged (the first on a tie), "
        f"at the training step it was reached; {MISSING}: not logged by that run.",
        "",
        *figures_table(figures),
    ]
    return "\n".join(lines) + "\n"
