"""``reft report RUN_DIR [RUN_DIR ...]``: a Markdown results page of runs, with a PNG of their curves.

Each RUN_DIR is a ``trainer.default_root_dir`` of ``reft fit`` / ``validate`` / ``test``; all of its
CSV log's versions are read, in order. A test is often its own run directory (``runs/demo/reft_seed0``
and ``runs/demo/reft_seed0_test``): give both, and each one's figures get a row.

    reft report runs/demo/reft_seed0 runs/demo/reft_seed0_test --out docs/results/my_run.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

from reft_lightning.report.metrics import MetricRow, has_timing, run_metrics
from reft_lightning.report.page import report_page
from reft_lightning.report.plot import plot_curves, plotted_metrics
from reft_lightning.report.summary import summarise

DESCRIPTION = (
    "Write a Markdown page of runs: a PNG of their curves (score, training accuracy, KL, entropy, "
    "value explained variance, validation accuracy; against training steps and training minutes) "
    "and a table of each run's steps, best and final validation accuracy and test figures."
)
"""What ``reft report --help`` says the command does."""
DEFAULT_TITLE = "Run report"
REPORT_NAME = "report.md"
"""The page's file name in the first RUN_DIR when ``--out`` is not given."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line of ``reft report``."""
    parser = argparse.ArgumentParser(prog="reft report", description=DESCRIPTION)
    parser.add_argument("runs", metavar="RUN_DIR", type=Path, nargs="+", help="run directories")
    out_help = f"the page, a .md file (default: FIRST_RUN_DIR/{REPORT_NAME}); the PNG is written beside it"
    parser.add_argument("--out", type=Path, help=out_help)
    parser.add_argument("--title", default=DEFAULT_TITLE, help="the page's heading (default: %(default)s)")
    return parser.parse_args(argv)


def run_labels(runs: list[Path]) -> list[str]:
    """Each run's label: its directory's name, or the path as given where two runs share a name."""
    names = [run.resolve().name for run in runs]
    return [name if names.count(name) == 1 else str(run) for name, run in zip(names, runs)]


def main(argv: list[str] | None = None) -> None:
    """Read every run (exiting with a message on a missing directory or log, or an unreadable
    number), then write the PNG (when any run logged a curve) and the page; print their paths."""
    args = parse_args(argv)
    out: Path = args.out or args.runs[0] / REPORT_NAME
    if out.suffix != ".md":
        raise SystemExit(f"reft report: --out must name a .md file, got {out}")
    runs: dict[str, list[MetricRow]] = {
        label: run_metrics(run) for label, run in zip(run_labels(args.runs), args.runs)
    }
    image = out.with_suffix(".png")
    curved = [name for name, rows in runs.items() if plotted_metrics([rows])]
    untimed = [name for name in curved if not has_timing(runs[name])]
    drawn = bool(curved)
    out.parent.mkdir(parents=True, exist_ok=True)
    if drawn:
        plot_curves(runs, image)
    page = report_page(
        args.title,
        runs={label: str(run) for label, run in zip(runs, args.runs)},
        figures=[summarise(name, rows) for name, rows in runs.items()],
        image=image.name if drawn else None,
        untimed=untimed,
    )
    out.write_text(page)
    print(f"wrote {out}" + (f" and {image}" if drawn else ""))
