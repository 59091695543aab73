"""Plot one ReFT run's curves (train score, sampled accuracy, KL, validation accuracy) from its CSV log.

python bench/plot_reft_run.py runs/my_reft_run --warmup-val 0.285 --out docs/results/my_run.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

from runs import metric_rows, pyplot, reft_curves


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", type=Path, help="the run's trainer.default_root_dir")
    parser.add_argument(
        "--warmup-val", type=float, help="validation accuracy of the warm-up, drawn as a line"
    )
    parser.add_argument("--smooth", type=int, default=50, help="moving-average window over iterations")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    plt = pyplot()
    train, val = reft_curves(metric_rows(args.run))
    window = max(1, args.smooth)

    def smoothed(key: str) -> list[float]:
        values = [t[key] for t in train]
        return [sum(values[max(0, i - window + 1) : i + 1]) / len(values[max(0, i - window + 1) : i + 1])
                for i in range(len(values))]  # fmt: skip

    iterations = list(range(1, len(train) + 1))
    figure, axes = plt.subplots(1, 3, figsize=(15, 4))
    axes[0].plot(iterations, smoothed("train/score"), label="score")
    axes[0].plot(iterations, smoothed("train/accuracy"), label="sampled accuracy")
    axes[0].set_title(f"training rollouts (moving average of {window})")
    axes[1].plot(iterations, smoothed("train/kl"))
    axes[1].set_title("KL to the reference (nats per sequence)")
    axes[2].plot([v[0] for v in val], [v[1] for v in val], marker="o", label="ReFT")
    if args.warmup_val is not None:
        axes[2].axhline(args.warmup_val, color="gray", linestyle="--", label="warm-up")
    axes[2].set_title("validation accuracy (greedy)")
    for axis in axes:
        axis.set_xlabel("PPO iteration")
    axes[0].legend()
    axes[2].legend()
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=90)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
