"""Helpers shared by the bench scripts: run ``reft`` as a subprocess and read a run's CSV log.

A run is a ``trainer.default_root_dir``; its metrics are in ``csv/version_*/metrics.csv`` (the
newest version is read: a bench reruns into the same directory), read by the package's
``reft_lightning.report.metrics`` (rows of floats, the empty cells left out). Nothing here imports
torch, so the bench drivers stay light processes.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from reft_lightning.report.metrics import MetricRow, metric_files, read_metrics, training_minutes

TRAIN_KEYS = ("train/score", "train/accuracy", "train/kl")
OOD_TEST = "--data.init_args.difficulty={min_steps: 4, max_steps: 4}"
"""Override of ``reft test`` for the out-of-distribution split of the synthetic task: problems of
four steps, where every training problem has two or three (``data.synthetic.Difficulty``)."""


def micro_model(model: Path) -> Path:
    """``model``: a directory holding a causal LM, made there first (a new random ``micro`` GPT-2 with
    a tokenizer trained on the synthetic task, ``reft_lightning.tiny``) when it holds none."""
    if not (model / "config.json").exists():
        subprocess.run([sys.executable, "-m", "reft_lightning.tiny", f"--out={model}", "--size=micro",
                        "--data=synthetic"], check=True)  # fmt: skip
    return model


def reft(*args: str) -> None:
    """``reft <args>`` in a fresh interpreter, without the progress bar; exits with its stderr on failure."""
    command = [sys.executable, "-m", "reft_lightning.cli", *args, "--trainer.enable_progress_bar=false"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{result.stderr[-3000:]}")


def metric_rows(run: Path) -> list[MetricRow]:
    """Rows of the newest CSV log of ``run`` (one per logging call; the keys it left empty absent)."""
    return read_metrics(metric_files(run)[-1])


def last_metric(run: Path, key: str) -> float:
    """The last logged value of ``key`` in ``run``."""
    values = [row[key] for row in metric_rows(run) if key in row]
    if not values:
        raise SystemExit(f"{key} was never logged in {run}")
    return values[-1]


def reft_curves(rows: list[MetricRow]) -> tuple[list[dict[str, float]], list[tuple[int, float]]]:
    """Per-iteration train metrics of a ReFT run, and (iterations done, val accuracy) per validation.

    Each train entry has ``TRAIN_KEYS`` and ``minutes``: training time so far (the step timings
    ``time/*`` summed, ``training_minutes``, so validation time is not counted).
    """
    train: list[dict[str, float]] = []
    val: list[tuple[int, float]] = []
    for row, minutes in zip(rows, training_minutes(rows)):
        if "train/score" in row:
            train.append({**{k: row[k] for k in TRAIN_KEYS}, "minutes": minutes})
        if "val/accuracy" in row:
            val.append((len(train), row["val/accuracy"]))
    return train, val


def dip_statistics(accuracy: list[float]) -> dict[str, float]:
    """Of a per-iteration sampled accuracy curve: the mean of iterations 1-10 (``first10``), the
    lowest 10-iteration moving mean within iterations 1-100 (``min10``; the dip) and the mean of
    iterations 91-100 (``last10``, NaN for shorter curves)."""
    first = accuracy[:100]
    windows = [statistics.mean(first[i : i + 10]) for i in range(max(len(first) - 9, 1))]
    return {
        "first10": statistics.mean(first[:10]),
        "min10": min(windows),
        "last10": statistics.mean(first[90:100]) if len(first) >= 100 else float("nan"),
    }


def block_means(accuracy: list[float], block: int = 25, within: int = 100) -> list[float]:
    """Means of consecutive ``block``-iteration blocks of a per-iteration sampled accuracy curve within
    its first ``within`` iterations (the last block may be shorter).

    The dip instrument of docs/results/reft_helps.md (section 8): a 25-iteration block holds 400
    rollouts at the demo's 16 a step, a standard error of about 2.5 points, where a 10-iteration
    window's 4 points make the lowest of 91 windows fall more than 5 points below the first in 73%
    of runs of a policy that does not change at all."""
    head = accuracy[:within]
    return [statistics.mean(head[i : i + block]) for i in range(0, len(head), block)]


def epoch_curve(rows: list[MetricRow]) -> list[float]:
    """Validation accuracy after each epoch of an SFT run, in order."""
    return [row["val/accuracy"] for row in rows if "val/accuracy" in row]


def evaluate(config: str, model: str, run: Path, stage: str, *extra: str) -> float:
    """Greedy accuracy of the export ``model`` on validation (``stage="validate"``) or test (``"test"``)."""
    reft(
        stage,
        f"--config={config}",
        f"--model.init_args.model={model}",
        f"--trainer.default_root_dir={run}",
        *extra,
    )
    return last_metric(run, "val/accuracy" if stage == "validate" else "test/accuracy")


def timing_row(name: str, values: list[float], baseline: float, first_seconds: float) -> str:
    """A Markdown row of an option's timings: ``| name | median (min-max) | median / baseline | first |``."""
    median = statistics.median(values)
    return (
        f"| {name} | {median:.0f} ({min(values):.0f}-{max(values):.0f}) | {median / baseline:.2f} | "
        f"{first_seconds:.1f} |"
    )


def publish_table(lines: list[str], out: Path) -> None:
    """Print a bench's Markdown ``lines`` and write them to ``out`` (its folder made if needed)."""
    text = "\n".join(lines)
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` with the file-only Agg backend (matplotlib is a dependency of the package)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
