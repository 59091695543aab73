"""Print the demo's result: the warm-up's test accuracy beside each ReFT seed's and the mean gain, then
the two SFT controls: SFT from the warm-up at ReFT's lr for as many optimizer steps, and the SFT
run's own best checkpoint (SFT continued to the end of its schedule).

Reads the ``test/accuracy`` that ``reft test`` logged under ``{demo}/warmup_test``,
``{demo}/reft_seed{s}_test``, ``{demo}/sft_control_test`` (SFT from the warm-up at ReFT's lr for
as many optimizer steps) and ``{demo}/sft_test`` (``make demo`` writes them).

    python bench/demo_summary.py --demo runs/demo --seeds 0 1 2 --warmup epoch_10
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
from pathlib import Path

from runs import block_means, last_metric, metric_rows, reft_curves


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--demo", default="runs/demo")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--warmup", default="epoch_10", help="the SFT export ReFT started from")
    args = parser.parse_args()
    demo = Path(args.demo)
    warmup = 100 * last_metric(demo / "warmup_test", "test/accuracy")
    sft = 100 * last_metric(demo / "sft_test", "test/accuracy")
    control = 100 * last_metric(demo / "sft_control_test", "test/accuracy")
    reft = {s: 100 * last_metric(demo / f"reft_seed{s}_test", "test/accuracy") for s in args.seeds}
    gains = [value - warmup for value in reft.values()]
    print("\nDemo result: greedy test accuracy on 500 held-out problems, checkpoints chosen on validation")
    print(f"  {'SFT warm-up (' + args.warmup + ', where ReFT starts)':42}{warmup:5.1f}%")
    for seed, value in reft.items():
        print(f"  {'ReFT seed ' + str(seed):42}{value:5.1f}%   ({value - warmup:+.1f})")
    spread = f"min {min(gains):+.1f}, max {max(gains):+.1f}"
    print(f"  {'ReFT mean gain over the warm-up':42}{statistics.mean(gains):+.1f} points ({spread})")
    mean = statistics.mean(reft.values())
    controls = {"SFT from the warm-up, same steps and lr": control, "SFT to the end of its schedule": sft}
    for name, value in controls.items():
        print(f"  {name:42}{value:5.1f}%   (ReFT mean {mean - value:+.1f} against it)")
    print("  Sampled training accuracy of the rollouts, mean of each block of 25 iterations (the dip):")
    for seed in args.seeds:
        train, _ = reft_curves(metric_rows(demo / f"reft_seed{seed}"))
        blocks = block_means([row["train/accuracy"] for row in train])
        print(f"  {'ReFT seed ' + str(seed):42}" + "  ".join(f"{100 * b:5.1f}%" for b in blocks))
    print(f"  measured on: {cpu_model()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    print("  (the SFT result depends on the CPU's float rounding: docs/results/reft_helps.md, section 7)")


def cpu_model() -> str:
    """The CPU's model name (Linux), else what ``platform`` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    main()
