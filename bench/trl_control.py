"""Independent PPO control: TRL 1.12.0's PPO on the demo's SFT checkpoint, questions, reward and settings.

Is the dip of sampled training accuracy in our ReFT's first ~50 PPO iterations a defect of our PPO
or a property of the setting? This runs a PPO we did not write (``trl.experimental.ppo.PPOTrainer``;
PPO was removed from later TRL) from the same checkpoint on the same 1,500 training questions, with
the same reward and the hyperparameters of ``configs/demo/reft_synthetic.yaml``, then evaluates each
final policy with our own greedy ``reft validate`` / ``reft test``:

    .venv/bin/python bench/trl_control.py --checkpoint runs/demo/sft/hf/best --seeds 0 1 2 --iterations 100

Steps: (a) create ``.venv-trl`` if missing (torch 2.13.0 CPU first, then ``bench/requirements-trl.txt``
with torch held at 2.13.0); (b) export the training questions with our data module (prompt text,
our prompt token ids: left-truncated to 300, and the gold answer) to ``<runs>/questions.jsonl``;
(c) per seed, ``bench/trl_control_worker.py`` in ``.venv-trl`` (it imports nothing from
``reft_lightning``); (d) greedy validation (200) and test (500) accuracy of each final policy and of
the start checkpoint with our CLI; (e) a markdown table, written with the per-iteration CSVs to
``--out``. Seeds already trained (``<runs>/seed<k>/policy`` present) are not retrained.

Equal to ours (the demo config): 16 questions x 1 sample per iteration, 2 PPO epochs over one
minibatch of 16, AdamW lr 3e-5 constant without warm-up (weight decay 0, betas 0.9/0.999, eps 1e-8),
beta 0.05 with the k1 per-token KL estimate in the reward, ratio clip 0.2, value clip 0.2 around the
old values, vf_coef 5, the halved clipped squared value error, gamma 1, lambda 1, advantages whitened
over all response tokens of the batch, no reward whitening, temperature 1 (top-k 0, top-p 1), 160 new
tokens, stop at EOS (the EOS token is part of the response and of the losses), no missing-EOS
penalty, terminal score 1 / 0.1 / 0 from the N-CoT answer check, gradient norm clipped to 1.0 over
policy and value parameters together (injected: see below), fp32, dropout 0 in the model, frozen
reference = the start checkpoint, value head zero-initialised, prompts left-padded and left-truncated
to 300 tokens, generation positions from the attention mask.

Differences I could not remove (from reading TRL 1.12.0's ``PPOTrainer.train``):

- Value model: a separate copy of the checkpoint (``AutoModelForSequenceClassification``,
  ``num_labels=1``) with its own backbone; our demo config puts the value head on the policy's shared
  backbone (``make demo`` passes ``value_model``, a separate copy, like TRL). ``--value shared``
  makes TRL's value model reuse the policy's transformer (two forward passes through one backbone,
  both gradients on it): the like-for-like control of the config's shared head.
- Value head: TRL's ``score`` is a bias-free ``Linear`` with no dropout; ours has a bias and
  ``value_dropout`` 0.1 active in the PPO updates (off for rollout and scoring).
- Loss reduction: TRL averages the policy and value losses over all response tokens of the
  minibatch (long responses weigh more); ours averages per sequence, then over sequences.
- Where the score sits: TRL adds it one position after the EOS token (the last response token when
  there is no room, e.g. responses cut at 160 tokens) and fits the value there too (the value mask
  extends one token past the response); ours puts it on the EOS token. With gamma = lambda = 1 the
  returns and advantages of the response tokens are the same; TRL's value loss has one more term.
- Old log-probs: TRL takes them from the sampling pass (``generate``'s scores, KV cache); ours
  recompute them in a separate forward. Their difference is float noise, so TRL's first-epoch
  ratio is 1 up to that noise rather than exactly.
- Gradient clipping: TRL's PPO loop never applies ``max_grad_norm``; the worker passes an AdamW
  that clips before each step (``ClippedAdamW``), so clipping is equal but not TRL's own.
- Data order and sampling noise: TRL shuffles with its own generator (drop-last batches of 16, 93
  per pass), ours with ``shuffle_seed``; the same seed therefore gives different batches and samples.
- Logged KL: TRL's ``kl`` is the mean per-sequence sum of k1 over the response, like our
  ``train/kl``; its ``approx_kl`` is ``0.5 * mean(log-ratio^2)`` (ours: k3), and its clip fractions
  are per-token means over the minibatch.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from runs import block_means, evaluate

CONFIG = "configs/demo/reft_synthetic.yaml"
VENV = Path(".venv-trl")
REQUIREMENTS = Path("bench/requirements-trl.txt")
WORKER = Path("bench/trl_control_worker.py")
WINDOWS = ((1, 10), (41, 50), (91, 100))
"""Iteration blocks (1-based, inclusive) whose mean sampled accuracy the table reports."""


def ensure_venv() -> Path:
    """``.venv-trl``'s python, creating the venv first when it is missing (torch 2.13.0, then TRL)."""
    python = VENV / "bin" / "python"
    if (VENV / ".installed").exists():
        return python
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "torch==2.13.0"], check=True)
    pin = VENV / "torch-pin.txt"
    pin.write_text("torch==2.13.0\n")
    subprocess.run([*pip, "-c", str(pin), "-r", str(REQUIREMENTS)], check=True)
    (VENV / ".installed").touch()
    return python


def export_questions(checkpoint: str, path: Path) -> None:
    """Our training questions as JSONL: ``id``, ``prompt`` (generation prompt), ``prompt_ids``, ``answer``.

    ``prompt_ids`` are our data pipeline's own (no special tokens, last 300 kept); the worker
    tokenises ``prompt`` itself and checks that it gets the same ids.
    """
    from reft_lightning.data.datasets import SyntheticDataModule
    from reft_lightning.data.formats import CotFormat, prompt_text

    data = SyntheticDataModule(
        num_train=1500, num_val=200, num_test=500, cot_format="ncot", tokenizer=checkpoint
    )
    data.setup()
    examples, prompt_ids = data.examples["train"], data._tokenized["train"]["prompt_ids"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        for example, ids in zip(examples, prompt_ids):
            prompt = prompt_text(example, CotFormat.NCOT, for_generation=True)
            record = {"id": example.id, "prompt": prompt, "prompt_ids": ids, "answer": example.answer}
            handle.write(json.dumps(record) + "\n")


def train_seed(python: Path, args: argparse.Namespace, questions: Path, seed: int) -> tuple[Path, float]:
    """Run the worker for ``seed`` (unless its policy exists); its run folder and minutes taken."""
    run = Path(args.runs) / f"seed{seed}"
    if (run / "policy" / "config.json").exists():
        return run, 0.0
    started = time.perf_counter()
    command = [
        str(python), str(WORKER), f"--checkpoint={args.checkpoint}", f"--questions={questions}",
        f"--seed={seed}", f"--iterations={args.iterations}", f"--value={args.value}", f"--out={run}",
        f"--lr={args.lr}", f"--temperature={args.temperature}",
    ]  # fmt: skip
    with (run.parent / f"seed{seed}.log").open("w") as log:
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)} (log: {run.parent / f'seed{seed}.log'})")
    return run, (time.perf_counter() - started) / 60


def read_iterations(path: Path) -> list[dict[str, float]]:
    """The worker's per-iteration CSV as floats."""
    with path.open() as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def block_mean(values: list[float], first: int, last: int) -> str:
    """Mean of ``values[first-1:last]`` as a percentage, or ``-`` when the run was shorter."""
    block = values[first - 1 : last]
    return f"{100 * statistics.mean(block):.1f}" if len(block) == last - first + 1 else "-"


def min_moving_mean(values: list[float], window: int = 10, within: int = 100) -> tuple[float, int]:
    """Lowest ``window``-iteration moving mean among the first ``within`` values, and its last iteration."""
    head = values[:within]
    means = [(statistics.mean(head[i - window : i]), i) for i in range(window, len(head) + 1)]
    return min(means) if means else (float("nan"), 0)


def greedy(model: str, run: Path) -> tuple[float, float]:
    """Our greedy validation and test accuracy of the export ``model``."""
    return evaluate(CONFIG, model, run / "val", "validate"), evaluate(CONFIG, model, run / "test", "test")


def seed_row(seed: int, rows: list[dict[str, float]], val: float, test: float, minutes: float) -> str:
    """One markdown table row."""
    accuracy = [r["accuracy"] for r in rows]
    low, at = min_moving_mean(accuracy)
    lowest = f"{100 * low:.1f} (it. {at - 9}-{at})" if at else "-"
    blocks = " | ".join(block_mean(accuracy, a, b) for a, b in WINDOWS)
    in_blocks = ", ".join(f"{100 * b:.1f}" for b in block_means(accuracy))
    kl = statistics.mean(r["kl"] for r in rows[-10:])
    took = f"{minutes:.1f}" if minutes else "cached"
    scores = f"{kl:.2f} | {100 * val:.1f} | {100 * test:.1f}"
    return f"| {seed} | {blocks} | {lowest} | {in_blocks} | {scores} | {took} |"


def write_curves(curves: dict[int, list[dict[str, float]]], path: Path) -> None:
    """All seeds' per-iteration records in one CSV with a ``seed`` column."""
    fields = ["seed", *next(iter(curves.values()))[0]]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for seed, rows in curves.items():
            writer.writerows({"seed": seed, **row} for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", default="runs/demo/sft/hf/best", help="HF export: the start policy")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--iterations", type=int, default=100, help="PPO iterations per seed (16 questions each)"
    )
    parser.add_argument("--value", choices=["separate", "shared"], default="separate", help="TRL value model")
    parser.add_argument("--lr", type=float, default=3e-5, help="3e-5: the old demo setting (section 2)")
    parser.add_argument(
        "--temperature", type=float, default=1.0, help="rollout temperature (the demo's is now 0.7)"
    )
    parser.add_argument("--runs", default="runs/bench_trl_control")
    parser.add_argument("--out", default="docs/results/trl_control")
    args = parser.parse_args()
    runs, out = Path(args.runs), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    python = ensure_venv()
    questions = runs / "questions.jsonl"
    export_questions(args.checkpoint, questions)
    start_val, start_test = greedy(args.checkpoint, runs / "start")
    lines = [
        f"TRL, {args.value} value model, lr {args.lr:g}, temperature {args.temperature:g},"
        f" {args.iterations} iterations x 16 questions, from"
        f" `{args.checkpoint}`: start validation {100 * start_val:.1f}%,"
        f" test {100 * start_test:.1f}% (greedy).",
        "",
        "| seed | sampled acc. % it. 1-10 | 41-50 | 91-100 | min 10-it. mean % (first 100)"
        " | 25-it. block means % | KL last 10 it. | val % | test % | train minutes |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    curves: dict[int, list[dict[str, float]]] = {}
    for seed in args.seeds:
        run, minutes = train_seed(python, args, questions, seed)
        curves[seed] = read_iterations(run / "iterations.csv")
        (out / f"iterations_seed{seed}.csv").write_text((run / "iterations.csv").read_text())
        val, test = greedy(str(run / "policy"), run)
        lines.append(seed_row(seed, curves[seed], val, test, minutes))
    table = "\n".join(lines)
    print(table)
    (out / "table.md").write_text(table + "\n")
    write_curves(curves, out / "curves.csv")


if __name__ == "__main__":
    main()
