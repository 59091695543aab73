"""Print the demo's result: the SFT checkpoint's test accuracy beside each ReFT seed's, and the mean gain.

Reads the ``test/accuracy`` that ``reft test`` logged under ``{demo}/sft_test`` and
``{demo}/reft_seed{s}_test`` (``make demo`` writes them).

    python bench/demo_summary.py --demo runs/demo --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from runs import last_metric


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--demo", default="runs/demo")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    demo = Path(args.demo)
    sft = 100 * last_metric(demo / "sft_test", "test/accuracy")
    reft = {s: 100 * last_metric(demo / f"reft_seed{s}_test", "test/accuracy") for s in args.seeds}
    gains = [value - sft for value in reft.values()]
    print("\nDemo result: greedy test accuracy on 500 held-out problems, checkpoints chosen on validation")
    print(f"  SFT (start of ReFT)   {sft:5.1f}%")
    for seed, value in reft.items():
        print(f"  ReFT seed {seed}           {value:5.1f}%   ({value - sft:+.1f})")
    spread = f"min {min(gains):+.1f}, max {max(gains):+.1f}"
    print(f"  ReFT mean gain        {statistics.mean(gains):+.1f} points ({spread})")


if __name__ == "__main__":
    main()
