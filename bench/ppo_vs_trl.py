"""One PPO iteration of reft_lightning's ReFT against TRL 1.12.0's ``trl.experimental.ppo`` on equal
work, on this machine: seconds per iteration, response tokens per second, peak memory, and the ratio.

Equal work: the same model weights (a random-initialised ``micro`` GPT-2 from ``reft_lightning.tiny``
unless ``--model`` is given; an untrained model rarely emits EOS, so both sides generate nearly
``--tokens`` tokens for every rollout), the same prompts (the demo's training questions, in each
side's own order), ``--batch`` questions x 1 sample per iteration, ``--tokens`` new tokens at
temperature 1, 2 PPO epochs over one minibatch, AdamW, fp32, ``--threads`` threads, and a separate
value model on both sides (TRL has no other). Rows:

- ``reft_lightning``: ``configs/demo/reft_synthetic.yaml`` with ``value_model`` set (separate critic);
- ``TRL 1.12.0``: ``bench/trl_control_worker.py`` with the same settings, in ``.venv-trl`` (created
  by ``bench/trl_control.py: ensure_venv`` when missing);
- ``reft_lightning, speed options``: the first row with ``old_logprobs: sampling`` (the decode
  loop's log-probs, one policy forward fewer), ``optimizer.fused`` (fused AdamW) and
  ``compile_blocks`` (each transformer block compiled; its compilation falls in the first iterations,
  which ``--skip`` leaves out);
- ``reft_lightning, speed options, static engine``: the speed options, rollouts by the static-cache
  engine (``engine.name: static``, its decode step compiled) instead of ``generate``;
- ``reft_lightning, speed options, static engine, length-grouped batches of 16``: as the previous
  row, with the evaluate step's forwards and the optimise step's forward/backward in groups of 16
  rollouts of similar length, each cut to the columns its rollouts use (``ppo.forward_batch_size``,
  ``ppo.micro_batch_size``; the same gradient);
- ``TRL 1.12.0, micro-batches of 16``: TRL with its training forward/backward in micro-batches of 16
  (``per_device_train_batch_size`` 16, ``gradient_accumulation_steps`` 4: the same optimizer steps),
  the control for the previous row (TRL pads every micro-batch to the whole batch's width);
- ``reft_lightning, shared value head``: the paper's default, a value head on the policy's backbone
  (TRL cannot do it; no TRL row to compare).

Each side runs ``--iterations`` iterations in a fresh process, ``--repeats`` times, the sides
alternating; the first ``--skip`` iterations of each run are left out (start-up, first allocations).
Per iteration: wall-clock from one iteration's end to the next (``bench/iteration_clock.py`` on our
side, the worker's log clock on TRL's), everything the loop does included; response tokens as each
side counts them (EOS included). Peak memory: the process's maximum resident set (``/usr/bin/time``).

    python bench/ppo_vs_trl.py --runs runs/ppo_vs_trl --out docs/results/ppo_vs_trl.md
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from reft_lightning.report.metrics import metric_files, read_metrics

from runs import micro_model
from trl_control import WORKER, ensure_venv, export_questions

CONFIG = "configs/demo/reft_synthetic.yaml"
OURS: dict[str, list[str]] = {
    "reft_lightning": ["VALUE_MODEL"],
    "reft_lightning, speed options": [
        "VALUE_MODEL", "--model.init_args.old_logprobs=sampling", "--model.init_args.optimizer.fused=true",
        "--model.init_args.compile_blocks=true",
    ],
    "reft_lightning, speed options, static engine": [
        "VALUE_MODEL", "--model.init_args.old_logprobs=sampling", "--model.init_args.optimizer.fused=true",
        "--model.init_args.compile_blocks=true", "--model.init_args.engine.name=static",
    ],
    "reft_lightning, speed options, static engine, length-grouped batches of 16": [
        "VALUE_MODEL", "--model.init_args.old_logprobs=sampling", "--model.init_args.optimizer.fused=true",
        "--model.init_args.compile_blocks=true", "--model.init_args.engine.name=static",
        "--model.init_args.ppo.micro_batch_size=16", "--model.init_args.ppo.forward_batch_size=16",
    ],
    "reft_lightning, shared value head": [],
}  # fmt: skip
"""Our rows: overrides of ``CONFIG`` (``VALUE_MODEL``: a separate value model from the same weights)."""
TRL_SIDES: dict[str, int | None] = {"TRL 1.12.0": None, "TRL 1.12.0, micro-batches of 16": 16}
"""TRL's rows: the worker's ``--micro-batch-size`` (``None``: the whole batch in one forward)."""
TRL_SIDE = "TRL 1.12.0"
"""The row the first ratio column divides by."""
SIDES = (*OURS, *TRL_SIDES)
STEP_ORDER = ("rollout", "score", "evaluate", "score_wait", "shape", "estimate", "optimise", "sync")
"""The steps of ``ReFTModule.training_step``, in order (its ``time/*`` metrics)."""


@dataclass
class Measured:
    """One run of one side."""

    seconds: list[float]
    """Wall-clock seconds of each iteration."""
    tokens: list[float]
    """Response tokens of each iteration."""
    memory: int
    """Peak resident set of the process (MB)."""
    steps: dict[str, list[float]] = field(default_factory=dict)
    """Ours: seconds of each step of the iteration (``time/rollout``, ...), per iteration."""


def timed(command: list[str], run: Path, threads: int) -> int:
    """Run ``command`` under ``/usr/bin/time``; its peak resident set in MB (fails with the log's tail)."""
    run.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": "bench"}
    memory = run / "peak_rss_kb.txt"
    with (run / "log.txt").open("w") as log:
        result = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(memory), *command], stdout=log,
                                stderr=subprocess.STDOUT, env=env)  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{(run / 'log.txt').read_text()[-3000:]}")
    return int(memory.read_text().split()[-1]) // 1024


def ours(model: Path, run: Path, args: argparse.Namespace, overrides: list[str]) -> Measured:
    """Our iterations' seconds and response tokens, and the peak RSS (MB)."""
    command = [
        sys.executable, "-m", "reft_lightning.cli", "fit", f"--config={CONFIG}",
        f"--trainer.default_root_dir={run}", f"--model.init_args.model={model}",
        f"--trainer.max_steps={2 * args.iterations}", "--trainer.limit_val_batches=0",
        "--trainer.enable_checkpointing=false", "--trainer.enable_progress_bar=false",
        '--trainer.callbacks=[{"class_path": "iteration_clock.IterationClock"}]',
        f"--data.init_args.batch_size={args.batch}",
        f"--model.init_args.rollout.max_new_tokens={args.tokens}",
        "--model.init_args.rollout.temperature=1.0",
        *(f"--model.init_args.value_model={model}" if o == "VALUE_MODEL" else o for o in overrides),
    ]  # fmt: skip
    memory = timed(command, run, args.threads)
    seconds = [float(line) for line in (run / "iteration_seconds.txt").read_text().split()]
    rows = [row for row in read_metrics(metric_files(run)[-1]) if "train/response_length" in row]
    tokens = [row["train/response_length"] * args.batch for row in rows]
    steps = {key: [row[key] for row in rows] for key in rows[0] if key.startswith("time/")}
    return Measured(seconds, tokens, memory, steps)


def trl(
    python: Path, model: Path, questions: Path, run: Path, args: argparse.Namespace, micro: int | None
) -> Measured:
    """TRL's iterations' seconds and response tokens, and the peak RSS (MB); ``micro``: rows per
    training forward and backward (``None``: the whole batch)."""
    command = [
        str(python), str(WORKER), f"--checkpoint={model}", f"--questions={questions}", "--seed=0",
        f"--iterations={args.iterations}", f"--batch-size={args.batch}", f"--response-length={args.tokens}",
        f"--threads={args.threads}", "--value=separate", "--lr=1e-5", "--temperature=1.0", f"--out={run}",
        "--no-save", *([f"--micro-batch-size={micro}"] if micro else []),
    ]  # fmt: skip
    memory = timed(command, run, args.threads)
    with (run / "iterations.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    return Measured([float(r["seconds"]) for r in rows], [float(r["response_tokens"]) for r in rows], memory)


def workload(model: Path | None, runs: Path) -> tuple[Path, Path, Path]:
    """TRL's virtual environment's Python (made when missing), the model (``model``, or a new micro
    GPT-2 in ``runs/model``) and the questions exported for TRL's side (``runs/questions.jsonl``)."""
    python = ensure_venv()
    model = micro_model(model or runs / "model")
    questions = runs / "questions.jsonl"
    if not questions.exists():
        export_questions(str(model), questions)
    return python, model, questions


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, help="a causal LM directory (default: a new micro GPT-2)")
    parser.add_argument("--batch", type=int, default=64, help="questions (rollouts) per iteration")
    parser.add_argument("--tokens", type=int, default=64, help="new tokens per rollout at most")
    parser.add_argument("--iterations", type=int, default=8)
    parser.add_argument("--skip", type=int, default=2, help="first iterations of each run left out")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=Path, default=Path("runs/ppo_vs_trl"))
    parser.add_argument("--out", type=Path, default=Path("docs/results/ppo_vs_trl.md"))
    args = parser.parse_args()

    python, model, questions = workload(args.model, args.runs)

    results: dict[str, list[Measured]] = {side: [] for side in SIDES}
    for repeat in range(args.repeats):
        order = SIDES if repeat % 2 == 0 else SIDES[::-1]
        for side in order:
            run = args.runs / f"{slug(side)}_{repeat}"
            if side in TRL_SIDES:
                results[side].append(trl(python, model, questions, run, args, TRL_SIDES[side]))
            else:
                results[side].append(ours(model, run, args, OURS[side]))
            print(f"{side}, repeat {repeat}: {results[side][-1].seconds}", flush=True)
    write_table(results, args)


def slug(side: str) -> str:
    """A run directory name for ``side``."""
    return "".join(c if c.isalnum() or c == "." else "_" for c in side).strip("_")


def write_table(results: dict[str, list[Measured]], args: argparse.Namespace) -> None:
    """Median and range of seconds per iteration and of response tokens/s, peak RSS and the ratio to
    TRL; then where our iterations' time goes, by step (medians)."""
    summary = {}
    for side, runs in results.items():
        seconds = [s for run in runs for s in run.seconds[args.skip :]]
        rates = [t / s for run in runs for s, t in zip(run.seconds[args.skip :], run.tokens[args.skip :])]
        summary[side] = (statistics.median(seconds), min(seconds), max(seconds), statistics.median(rates),
                         max(run.memory for run in runs))  # fmt: skip
    trl_median = summary[TRL_SIDE][0]
    fastest_trl = min(summary[side][0] for side in TRL_SIDES)
    lines = [
        f"Equal work: a micro GPT-2, {args.batch} rollouts x {args.tokens} new tokens per iteration, "
        f"2 PPO epochs over one minibatch, fp32, {args.threads} thread(s); {args.repeats} alternating "
        f"runs of {args.iterations} iterations per side, the first {args.skip} of each left out.",
        "",
        "| implementation | s / iteration, median (range) | response tokens / s, median | peak RSS (MB) | "
        f"{TRL_SIDE} time / this time | fastest TRL row's time / this time |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for side, (median, low, high, rate, memory) in summary.items():
        ratios = f"{trl_median / median:.2f} | {fastest_trl / median:.2f}"
        lines.append(f"| {side} | {median:.2f} ({low:.2f}-{high:.2f}) | {rate:.0f} | {memory} | {ratios} |")
    ours_sides = [side for side in SIDES if results[side][0].steps]
    present = results[ours_sides[0]][0].steps
    names = [f"time/{step}" for step in STEP_ORDER if f"time/{step}" in present]
    lines += ["", "Our iteration by step (median seconds):", "",
              "| implementation | " + " | ".join(n.removeprefix("time/") for n in names) + " |",
              "| --- |" + " --- |" * len(names)]  # fmt: skip
    for side in ours_sides:
        medians = [
            statistics.median(v for run in results[side] for v in run.steps[n][args.skip :]) for n in names
        ]
        lines.append(f"| {side} | " + " | ".join(f"{m:.3f}" for m in medians) + " |")
    print("\n".join(lines))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
