"""Does ReFT learn? PPO from an SFT warm-up on the synthetic task, several seeds, against the warm-up.

For each seed: ``reft fit`` with ``configs/demo/reft_synthetic_lr3e-5.yaml`` (overrides below) from the
warm-up export, validation (greedy, held-out split) every ``--val-every`` iterations, then
``reft test`` of the checkpoint chosen on validation. The warm-up itself is validated and tested
the same way. Prints a markdown table and writes it, with per-iteration curves (CSV, and a PNG
when matplotlib is installed), to ``--out``.

    python bench/reft_learning.py --warmup runs/demo/sft/hf/epoch_8 --seeds 0 1 2 --iterations 94
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from pathlib import Path

from runs import evaluate, metric_rows, pyplot, reft, reft_curves

CONFIG = "configs/demo/reft_synthetic_lr3e-5.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--warmup", required=True, help="HF export of the SFT warm-up")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--iterations", type=int, default=94, help="PPO iterations per seed")
    parser.add_argument("--val-every", type=int, default=20)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--kl-coef", type=float, default=0.05)
    parser.add_argument("--runs", default="runs/bench_reft_learning")
    parser.add_argument("--out", default="docs/results/reft_learning")
    parser.add_argument("extra", nargs="*", help="further overrides passed to every `reft fit`")
    args = parser.parse_args()
    runs, out = Path(args.runs), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    warm_val = evaluate(CONFIG, args.warmup, runs / "warmup_val", "validate")
    warm_test = evaluate(CONFIG, args.warmup, runs / "warmup_test", "test")
    lines = [
        f"Warm-up `{args.warmup}`: validation {100 * warm_val:.1f}%, test {100 * warm_test:.1f}%.",
        "",
        "| seed | best val % (after it.) | test % at best val | test gain | train score: first 10 it."
        " | last 10 | minutes |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    curves = []
    for seed in args.seeds:
        run = runs / f"seed{seed}"
        started = time.perf_counter()
        reft(
            "fit", f"--config={CONFIG}", f"--seed_everything={seed}", f"--trainer.default_root_dir={run}",
            f"--trainer.max_steps={2 * args.iterations}", "--trainer.max_epochs=-1",
            f"--trainer.val_check_interval={args.val_every}", f"--model.init_args.model={args.warmup}",
            f"--model.init_args.optimizer.lr={args.lr}", f"--model.init_args.ppo.kl_coef={args.kl_coef}",
            f"--data.init_args.shuffle_seed={seed}", *args.extra,
        )  # fmt: skip
        minutes = (time.perf_counter() - started) / 60
        train, val = reft_curves(metric_rows(run))
        scores = [t["train/score"] for t in train]
        best_iteration, best_val = max(val, key=lambda v: v[1])
        test = evaluate(CONFIG, str(run / "hf" / "best"), run / "test", "test")
        first, last = statistics.mean(scores[:10]), statistics.mean(scores[-10:])
        lines.append(
            f"| {seed} | {100 * best_val:.1f} ({best_iteration}) | {100 * test:.1f} | "
            f"{100 * (test - warm_test):+.1f} | {first:.3f} | {last:.3f} | {minutes:.1f} |"
        )
        curves.append((seed, train, val))
    table = "\n".join(lines)
    print(table)
    (out / "table.md").write_text(table + "\n")
    with (out / "curves.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["seed", "iteration", "train_score", "train_accuracy", "train_kl", "val_accuracy"])
        for seed, train, val in curves:
            for iteration, t in enumerate(train, start=1):
                writer.writerow([seed, iteration, t["train/score"], t["train/accuracy"], t["train/kl"], ""])
            for iteration, accuracy in val:
                writer.writerow([seed, iteration, "", "", "", accuracy])
    _plot(curves, out / "curves.png")


def _plot(curves: list[tuple[int, list[dict[str, float]], list[tuple[int, float]]]], path: Path) -> None:
    plt = pyplot()
    figure, axes = plt.subplots(1, 3, figsize=(14, 4))
    for seed, train, val in curves:
        iterations = range(1, len(train) + 1)
        axes[0].plot(iterations, [t["train/score"] for t in train], label=f"seed {seed}", alpha=0.7)
        axes[1].plot(iterations, [t["train/kl"] for t in train], label=f"seed {seed}", alpha=0.7)
        axes[2].plot([v[0] for v in val], [v[1] for v in val], marker="o", label=f"seed {seed}")
    for axis, title in zip(
        axes, ("train score (sampled)", "KL to reference (nats/seq)", "val accuracy (greedy)")
    ):
        axis.set_title(title)
        axis.set_xlabel("PPO iteration")
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
