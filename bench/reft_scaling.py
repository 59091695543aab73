"""How one ReFT iteration's time grows with the work: seconds per iteration against response length
(at a fixed rollout batch) and against rollout batch (at a fixed length), with the time per
response token, so that growth worse than linear in tokens shows as a rising column; with
``--count-flops``, also the iteration's matrix-multiply GFLOP (``bench/step_flops.py: counted_flops``,
one more eager run per point) and the seconds per GFLOP, which separate the model's own growth in
arithmetic (attention is quadratic in length) from the implementation's cost per unit of arithmetic.

The workload of ``bench/ppo_vs_trl.py`` (one of its rows of ours, ``--side``: a random ``micro``
GPT-2, 2 PPO epochs over one minibatch, fp32, ``--threads`` threads), one fresh process per point:

    python bench/reft_scaling.py --runs runs/reft_scaling --out docs/results/reft_scaling.md
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from step_flops import counted_flops, total

from ppo_vs_trl import OURS, ours
from runs import micro_model

STEPS = ("rollout", "evaluate", "optimise")
"""The steps whose median seconds the table shows."""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lengths", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--fixed-batch", type=int, default=64)
    parser.add_argument("--fixed-length", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--skip", type=int, default=1, help="first iterations of each run left out")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--side", choices=list(OURS), default="reft_lightning", help="a row of ours in bench/ppo_vs_trl.py"
    )
    parser.add_argument("--count-flops", action="store_true", help="count each point's GFLOP too")
    parser.add_argument("--runs", type=Path, default=Path("runs/reft_scaling"))
    parser.add_argument("--out", type=Path, default=Path("docs/results/reft_scaling.md"))
    args = parser.parse_args()
    model = micro_model(args.runs / "model")
    points = [(args.fixed_batch, length) for length in args.lengths]
    points += [(batch, args.fixed_length) for batch in args.batches if batch != args.fixed_batch]
    flops_columns = " GFLOP | s per 100 GFLOP |" if args.count_flops else ""
    lines = [
        f"One ReFT iteration ({args.side!r} of bench/ppo_vs_trl.py, 2 PPO epochs, fp32, {args.threads} "
        f"thread(s)); median of {args.iterations - args.skip} iterations after the first {args.skip}.",
        "",
        "| rollouts | new tokens (at most) | response tokens | s / iteration | ms per response token | "
        + " | ".join(f"{step} s" for step in STEPS)
        + f" |{flops_columns}",
        "| --- " * (5 + len(STEPS) + 2 * args.count_flops) + "|",
    ]
    for batch, length in points:
        point = argparse.Namespace(
            batch=batch, tokens=length, iterations=args.iterations, threads=args.threads
        )
        measured = ours(model, args.runs / f"b{batch}_t{length}", point, OURS[args.side])
        seconds = statistics.median(measured.seconds[args.skip :])
        tokens = statistics.median(measured.tokens[args.skip :])
        steps = [statistics.median(measured.steps[f"time/{step}"][args.skip :]) for step in STEPS]
        row = f"| {batch} | {length} | {tokens:.0f} | {seconds:.2f} | {1000 * seconds / tokens:.2f} | "
        row += " | ".join(f"{step:.2f}" for step in steps) + " |"
        if args.count_flops:
            run = args.runs / f"b{batch}_t{length}_counted"
            gflop = total(counted_flops(model, run, point, OURS[args.side], iterations=1))
            row += f" {gflop:.0f} | {100 * seconds / gflop:.2f} |"
        lines.append(row)
        print(lines[-1], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
