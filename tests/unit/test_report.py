"""``reft report`` on hand-made CSV logs with known values: reading every version in order, training
minutes, the table's figures and dashes, the PNG's panels, and the errors that name what is wrong."""

from __future__ import annotations

import csv
import re
import struct
from pathlib import Path

import pytest

from reft_lightning.cli import main
from reft_lightning.report.metrics import curve, run_metrics, training_minutes
from reft_lightning.report.page import MISSING
from reft_lightning.report.plot import DPI, PANEL_INCHES, curves_figure
from reft_lightning.report.summary import summarise

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _write_log(run: Path, version: int, rows: list[dict[str, object]]) -> Path:
    """A ``csv/version_{version}/metrics.csv`` as Lightning's CSVLogger writes it: every key a column,
    an empty cell where a row did not log it."""
    folder = run / "csv" / f"version_{version}"
    folder.mkdir(parents=True)
    columns = sorted({key for row in rows for key in row})
    path = folder / "metrics.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _train(
    step: int, score: float, rollout: float | None = None, optimise: float | None = None
) -> dict[str, object]:
    row: dict[str, object] = {"epoch": 0, "step": step, "train/score": score, "train/accuracy": score / 2}
    if rollout is not None:
        row |= {"time/rollout": rollout, "time/optimise": optimise}
    return row


def _table(page: str) -> list[list[str]]:
    """The Markdown table's rows (header first, the alignment line left out) as lists of cells."""
    lines = [line for line in page.splitlines() if line.startswith("| ") and "---" not in line]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def _png_size(path: Path) -> tuple[int, int]:
    """Width and height in pixels, read from the PNG's IHDR chunk."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    return struct.unpack(">II", data[16:24])


def test_training_minutes_are_the_cumulative_sum_of_the_step_timings(tmp_path: Path) -> None:
    rows = [
        _train(0, 0.1, rollout=30, optimise=30),  # 60 s
        {"step": 0, "val/accuracy": 0.2},  # validation is not timed
        _train(1, 0.2, rollout=60, optimise=0),  # +60 s
        _train(2, 0.3, rollout=45, optimise=45),  # +90 s
    ]
    _write_log(tmp_path, 0, rows)
    logged = run_metrics(tmp_path)
    assert training_minutes(logged) == pytest.approx([1.0, 1.0, 2.0, 3.5])
    score = curve(logged, "train/score")
    assert score.steps == [1, 2, 3]  # Lightning's step is the batches done before the row: + 1
    assert score.minutes == pytest.approx([1.0, 2.0, 3.5])
    assert score.values == pytest.approx([0.1, 0.2, 0.3])
    val = curve(logged, "val/accuracy")
    assert (val.steps, val.minutes) == ([1], pytest.approx([1.0]))


def test_every_version_is_read_in_version_order(tmp_path: Path) -> None:
    _write_log(tmp_path, 10, [_train(4, 0.5, rollout=60, optimise=60)])  # 10 after 2, not after 1
    _write_log(tmp_path, 2, [_train(2, 0.3, rollout=30, optimise=0), _train(3, 0.4, rollout=30, optimise=0)])
    _write_log(tmp_path, 0, [_train(0, 0.1, rollout=60, optimise=0), _train(1, 0.2, rollout=60, optimise=0)])
    (tmp_path / "csv" / "version_old").mkdir()  # not a Lightning version folder: ignored
    (tmp_path / "csv" / "version_old" / "metrics.csv").write_text("step,train/score\n9,9\n")
    logged = run_metrics(tmp_path)
    score = curve(logged, "train/score")
    assert score.steps == [1, 2, 3, 4, 5]
    assert score.values == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])
    assert score.minutes == pytest.approx([1.0, 2.0, 2.5, 3.0, 5.0])  # accumulated across versions
    assert summarise("run", logged).steps == 5


def test_best_validation_is_the_first_highest_and_missing_figures_are_dashes(tmp_path: Path) -> None:
    reft = tmp_path / "runs" / "reft"
    val = [0.30, 0.55, 0.40, 0.55, 0.45]
    rows = [_train(step, 0.1, rollout=6, optimise=6) for step in range(10)]
    rows += [{"step": 2 * i + 1, "val/accuracy": v, "val/loss": 1.0} for i, v in enumerate(val)]
    _write_log(reft, 0, sorted(rows, key=lambda row: row["step"]))
    test = tmp_path / "runs" / "reft_test"
    estimates = {"test/voting@4": 0.5, "test/pass@16": 0.9, "test/pass@2": 0.7, "test/extracted": 0.99}
    _write_log(test, 0, [{"step": 0, "test/accuracy": 0.0, **estimates}])  # 0.0 is a figure, not a dash
    out = tmp_path / "pages" / "results.md"

    main(["report", str(reft), str(test), f"--out={out}", "--title=Seed 0"])

    page = out.read_text()
    assert page.startswith("# Seed 0\n")
    header, reft_row, test_row = _table(page)
    assert header == [
        "Run", "Steps", "Best val accuracy", "Best at step", "Final val accuracy", "Test accuracy",
        "Test pass@2", "Test pass@16", "Test voting@4",
    ]  # fmt: skip
    assert reft_row == ["reft", "10", "55.0%", "4", "45.0%", MISSING, MISSING, MISSING, MISSING]
    assert test_row == ["reft_test", MISSING, MISSING, MISSING, MISSING, "0.0%", "70.0%", "90.0%", "50.0%"]
    assert "![Curves](results.png)" in page  # relative to the page
    assert "no timing" not in page
    assert _png_size(out.with_suffix(".png"))[0] == 2 * PANEL_INCHES[0] * DPI  # steps and minutes


def test_an_untimed_run_is_named_and_drawn_against_steps_only(tmp_path: Path) -> None:
    sft = tmp_path / "sft"
    _write_log(sft, 0, [{"step": 0, "train/loss": 2.0}, {"step": 3, "train/loss": 1.0, "val/accuracy": 0.25}])

    main(["report", str(sft)])  # the page goes to the first run's directory by default

    page = (sft / "report.md").read_text()
    assert "`sft` logged no timing columns (`time/*`): drawn against steps only." in page
    assert _table(page)[1] == ["sft", "4", "25.0%", "4", "25.0%", MISSING]
    width, height = _png_size(sft / "report.png")
    assert (width, height) == (PANEL_INCHES[0] * DPI, PANEL_INCHES[1] * DPI)  # one panel: validation


def test_untimed_runs_are_left_out_of_the_minutes_panels() -> None:
    timed = [_train(0, 0.2, rollout=30, optimise=30), _train(1, 0.4, rollout=30, optimise=30)]
    untimed = [_train(0, 0.1), _train(1, 0.3)]
    figure = curves_figure({"timed": timed, "untimed": untimed})
    (score_steps, score_minutes), (accuracy_steps, _) = [figure.axes[:2], figure.axes[2:]]
    assert [axis.get_title() for axis in (score_steps, accuracy_steps)] == [
        "training score (mean terminal reward of the rollouts)",
        "training accuracy of the sampled rollouts (%)",
    ]
    assert [line.get_label() for line in score_steps.lines] == ["timed", "untimed"]
    assert [line.get_label() for line in score_minutes.lines] == ["timed"]
    assert list(score_minutes.lines[0].get_xdata()) == pytest.approx([1.0, 2.0])
    assert list(accuracy_steps.lines[1].get_ydata()) == pytest.approx([5.0, 15.0])  # percent


def test_runs_without_curves_get_a_table_and_no_image(tmp_path: Path) -> None:
    test = tmp_path / "test"
    _write_log(test, 0, [{"step": 0, "test/accuracy": 0.125}])
    main(["report", str(test)])
    page = (test / "report.md").read_text()
    assert "No run logged a training or validation curve." in page and "![" not in page
    assert not (test / "report.png").exists()
    assert _table(page)[1][-1] == "12.5%"


def test_runs_sharing_a_directory_name_are_labelled_by_their_paths(tmp_path: Path) -> None:
    first, second = tmp_path / "a" / "reft", tmp_path / "b" / "reft"
    for run in (first, second):
        _write_log(run, 0, [{"step": 0, "test/accuracy": 0.5}])
    main(["report", str(first), str(second), f"--out={tmp_path / 'page.md'}"])
    labels = [row[0] for row in _table((tmp_path / "page.md").read_text())[1:]]
    assert labels == [str(first), str(second)]


def test_a_bad_number_is_named_by_file_line_and_column(tmp_path: Path) -> None:
    path = _write_log(tmp_path, 0, [_train(0, 0.5), _train(1, 0.5)])
    lines = path.read_text().splitlines()
    assert lines[0].split(",")[3] == "train/score"
    cells = lines[2].split(",")
    cells[3] = "0.5x"
    path.write_text("\n".join([*lines[:2], ",".join(cells)]) + "\n")
    with pytest.raises(
        SystemExit, match=f"^{re.escape(str(path))}:3:4: train/score: '0.5x' is not a number$"
    ):
        main(["report", str(tmp_path)])


def test_a_row_without_a_step_is_refused(tmp_path: Path) -> None:
    path = _write_log(tmp_path, 0, [{"step": 0, "val/accuracy": 0.5}, {"step": "", "val/accuracy": 0.5}])
    with pytest.raises(SystemExit, match=f"^{re.escape(str(path))}:3: the 'step' cell is empty$"):
        main(["report", str(tmp_path)])


def test_a_missing_run_directory_or_log_is_refused_by_name(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_run"
    expected = "expected a run directory (trainer.default_root_dir) holding csv/version_*/metrics.csv"
    with pytest.raises(SystemExit, match=re.escape(f"{missing}: no such directory; {expected}")):
        main(["report", str(missing)])
    empty = tmp_path / "empty_run"
    (empty / "csv").mkdir(parents=True)
    with pytest.raises(
        SystemExit, match=re.escape(f"no CSV log under {empty}: expected csv/version_*/metrics.csv")
    ):
        main(["report", str(empty)])
    assert not (empty / "report.md").exists()


def test_out_must_be_a_markdown_file(tmp_path: Path) -> None:
    _write_log(tmp_path, 0, [{"step": 0, "test/accuracy": 0.5}])
    with pytest.raises(SystemExit, match=r"--out must name a \.md file, got .*report\.png$"):
        main(["report", str(tmp_path), f"--out={tmp_path / 'report.png'}"])
