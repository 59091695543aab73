"""Greedy accuracy of demo exports on synthetic problems that none of the demo's splits contain: a
selection set for choosing a ReFT setting without touching the demo's test set.

The synthetic pool is drawn in order from one seed (``data.synthetic.generate_problems``): with the
demo's 1,500 training and 200 validation problems, asking for ``500 + --count`` test problems gives
the demo's 500 test problems first, then ``--count`` new ones, distinct from every earlier problem.
``reft predict`` answers all of them (one JSONL record per problem); only the new ones are scored.

    python bench/fresh_problems.py --exports runs/demo/sft/hf/epoch_10 runs/lev/demo_seed0/hf/best \\
        --count 2000 --runs runs/fresh_problems --out runs/fresh_problems/table.md
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from runs import publish_table, reft

CONFIG = "configs/demo/sft_synthetic.yaml"
DEMO_SPLITS = 1500 + 200 + 500
"""Problems of the demo's training, validation and test splits: the pool's first ones."""


def fresh_accuracy(export: str, run: Path, count: int) -> float:
    """Greedy accuracy of ``export`` on the ``count`` problems after the demo's splits (cached)."""
    predictions = run / "predictions.jsonl"
    if not predictions.is_file():
        reft(
            "predict", f"--config={CONFIG}", f"--model.init_args.model={export}",
            f"--trainer.default_root_dir={run}", f"--data.init_args.num_test={500 + count}",
        )  # fmt: skip
    records = [json.loads(line) for line in predictions.read_text().splitlines()]
    fresh = [r for r in records if int(r["id"].rsplit("_", 1)[1]) >= DEMO_SPLITS]
    if len(fresh) != count:
        raise SystemExit(f"{predictions}: {len(fresh)} fresh problems answered, expected {count}")
    return statistics.fmean(float(r["greedy"]["correct"]) for r in fresh)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--exports", nargs="+", required=True, help="HF export directories")
    parser.add_argument("--count", type=int, default=2000, help="fresh problems")
    parser.add_argument("--parallel", type=int, default=2, help="exports at once (1 thread each if > 1)")
    parser.add_argument("--runs", type=Path, default=Path("runs/fresh_problems"))
    parser.add_argument("--out", type=Path, default=Path("runs/fresh_problems/table.md"))
    args = parser.parse_args()
    if args.parallel > 1:
        os.environ["OMP_NUM_THREADS"] = "1"
    runs = [args.runs / export.strip("/").replace("/", "_") for export in args.exports]
    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        accuracies = list(pool.map(lambda job: fresh_accuracy(*job, args.count), zip(args.exports, runs)))
    lines = [f"Greedy accuracy on {args.count} fresh synthetic problems (ids {DEMO_SPLITS}+):", "",
             "| export | accuracy (%) |", "| --- | --- |"]  # fmt: skip
    lines += [f"| `{export}` | {100 * accuracy:.1f} |" for export, accuracy in zip(args.exports, accuracies)]
    publish_table(lines, args.out)


if __name__ == "__main__":
    main()
