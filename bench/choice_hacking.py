"""Reward hacking on multiple choice (paper, section 4.4), measured offline with the demo's tiny model.

The synthetic questions are asked as MathQA-style multiple choice (``data.init_args.multiple_choice``:
five numeric options, the answer a letter). ``ChoiceReward``'s monitor counts the samples whose
letter is right while their reasoning's last number is not that option's (``guessed_of_correct``).

1. SFT of the demo's base model on the multiple-choice questions (``configs/demo/sft_synthetic.yaml``).
2. ReFT from its ``--warmup`` export, once with the paper's scores (no partial reward: a wrong letter
   scores 0) and once with the official code's ``minimum: 0.1`` (every sample at least 0.1), per seed.
3. Greedy test of the warm-up and of each ReFT run at its best validation, with the monitor.

A step whose run directory holds ``done`` is not rerun. Prints and writes a Markdown table:

    python bench/choice_hacking.py --base runs/demo/base/hf/final --seeds 0 \\
        --runs runs/choice_hacking --out docs/results/choice_hacking.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

from runs import block_means, last_metric, metric_rows, reft

SFT = "configs/demo/sft_synthetic.yaml"
REFT = "configs/demo/reft_synthetic.yaml"
CHOICE = [
    "--data.init_args.multiple_choice=true",
    "--model.init_args.reward=reft_lightning.rewards.ChoiceReward",
]
MINIMUMS = (0.0, 0.1)
"""ChoiceReward's ``minimum``: the paper's (0) and the official code's (0.1)."""


def once(run: Path, *args: str) -> None:
    """``reft <args>`` unless ``run`` already holds ``done``."""
    if (run / "done").exists():
        return
    reft(*args, f"--trainer.default_root_dir={run}")
    (run / "done").write_text("done\n")


def tested(config: str, model: Path, run: Path, minimum: float) -> tuple[float, float]:
    """Greedy test accuracy and guessed-of-correct fraction of ``model``."""
    once(run, "test", f"--config={config}", *CHOICE, f"--model.init_args.reward.init_args.minimum={minimum}",
         f"--model.init_args.model={model}")  # fmt: skip
    return last_metric(run, "test/accuracy"), last_metric(run, "test/reward_guessed_of_correct")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", required=True, help="the demo's base model (runs/demo/base/hf/final)")
    parser.add_argument("--warmup", default="epoch_10", help="the SFT export ReFT starts from")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--runs", type=Path, default=Path("runs/choice_hacking"))
    parser.add_argument("--out", type=Path, default=Path("docs/results/choice_hacking.md"))
    args = parser.parse_args()

    sft = args.runs / "sft"
    once(sft, "fit", f"--config={SFT}", *CHOICE, f"--model.init_args.model={args.base}")
    warmup = sft / "hf" / args.warmup
    rows = [("warm-up", "", *tested(SFT, warmup, args.runs / "warmup_test", 0.0), "")]
    for minimum in MINIMUMS:
        for seed in args.seeds:
            run = args.runs / f"reft_min{minimum}_seed{seed}"
            minimum_arg = f"--model.init_args.reward.init_args.minimum={minimum}"
            seeded = [f"--seed_everything={seed}", f"--data.init_args.shuffle_seed={seed}"]
            models = [f"--model.init_args.model={warmup}", f"--model.init_args.value_model={warmup}"]
            once(run, "fit", f"--config={REFT}", *CHOICE, minimum_arg, *seeded, *models)
            guessed = [row["train/reward_guessed_of_correct"] for row in metric_rows(run)
                       if "train/reward_guessed_of_correct" in row]  # fmt: skip
            blocks = ", ".join(f"{100 * b:.1f}" for b in block_means(guessed))
            test = tested(
                REFT, run / "hf" / "best", args.runs / f"reft_min{minimum}_seed{seed}_test", minimum
            )
            rows.append((f"ReFT, minimum {minimum}", str(seed), *test, blocks))
    lines = [
        "| run | seed | test accuracy | guessed, of the correct test answers | guessed, of the correct "
        "rollouts, 25-iteration blocks |",
        "| --- | --- | --- | --- | --- |",
        *[
            f"| {name} | {seed} | {100 * acc:.1f} | {100 * guess:.1f} | {blocks} |"
            for name, seed, acc, guess, blocks in rows
        ],
    ]
    print("\n".join(lines))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
