"""What P-CoT scoring costs per PPO iteration: a batch of programs run in the sandbox by ``ProgramReward``.

Each batch is ``--batch`` completions of synthetic P-CoT problems (the gold program bodies, as a
policy that has learnt the format writes them), of which ``--looping`` never return (``while True``)
and so run until the timeout. Timed: wall seconds of one ``ProgramReward`` call (the trainer's step 2,
which runs in the background during step 3: ``time/score_wait`` is what step 3 did not hide), median
of ``--repeats`` after one warm-up call (which starts the worker pool), for each pool size in
``--workers``. Compare with ``bench/ppo_vs_trl.py``'s seconds per iteration at the same batch.

    python bench/pcot_reward.py --out docs/results/pcot_reward.md
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from reft_lightning.data.formats import pcot_header
from reft_lightning.data.synthetic import generate_problems
from reft_lightning.rewards.correctness import ProgramReward

from runs import publish_table

LOOP_BODY = "    while True:\n        pass\n"
"""A completion that never returns: it costs a worker the whole timeout."""


def batch_seconds(reward: ProgramReward, completions: list[str], examples: list, repeats: int) -> list[float]:
    """Wall seconds of ``repeats`` scorings of the batch, after one warm-up scoring."""
    output = reward(completions, examples)
    correct = sum(output.correct)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        reward(completions, examples)
        times.append(time.perf_counter() - started)
    print(f"  {correct} of {len(completions)} correct; seconds {[round(t, 3) for t in times]}", flush=True)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--looping", type=int, nargs="+", default=[0, 1], help="never-returning programs")
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per program (spec: 10)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("docs/results/pcot_reward.md"))
    args = parser.parse_args()
    examples = generate_problems(args.batch, seed=0, cot_format="pcot")
    bodies = [e.cot.removeprefix(pcot_header(e.question)) for e in examples]
    lines = [
        f"P-CoT scoring of {args.batch} completions per call (`ProgramReward`, timeout {args.timeout:g} s, "
        f"memory 1024 MiB), median of {args.repeats} calls after a warm-up:",
        "",
        "| sandbox workers | never-returning programs | seconds per batch, median (range) | ms per program |",
        "| --- | --- | --- | --- |",
    ]
    for workers in args.workers:
        reward = ProgramReward(timeout_s=args.timeout, workers=workers)
        try:
            for looping in args.looping:
                completions = [LOOP_BODY] * looping + bodies[looping:]
                print(f"workers {workers}, looping {looping}:", flush=True)
                times = batch_seconds(reward, completions, examples, args.repeats)
                median = statistics.median(times)
                lines.append(
                    f"| {workers} | {looping} | {median:.2f} ({min(times):.2f}-{max(times):.2f}) | "
                    f"{1000 * median / args.batch:.1f} |"
                )
        finally:
            reward.close()
    publish_table(lines, args.out)


if __name__ == "__main__":
    main()
