"""The stability levers of the ReFT stage, measured on the demo: the first-iterations dip and the gain.

Each named setting (a config plus overrides, see ``SETTINGS``: the ``demo*`` settings start from
``configs/demo/reft_synthetic.yaml``, the others from ``configs/demo/reft_synthetic_lr3e-5.yaml``) runs ReFT
from ``--start`` for ``--passes`` passes of at most ``--iterations`` PPO iterations per seed
(a run directory caches one run: give each measurement its own ``--runs``), greedy validation every
``--val-every`` iterations, then ``reft test`` of the checkpoint chosen on validation. Reported per
run: the sampled training accuracy of iterations 1-10, the lowest 10-iteration moving mean within
the first 100 (the dip), iterations 91-100, best validation, and test at best validation against
the start checkpoint's test accuracy. Finished runs are read back from their ``summary.json``.

    python bench/reft_levers.py --start runs/demo/sft/hf/best --settings value_model grpo4_skip \\
        --seeds 0 1 2 --iterations 100 --parallel 2
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from runs import OOD_TEST, dip_statistics, evaluate, metric_rows, reft, reft_curves

OLD_CONFIG = "configs/demo/reft_synthetic_lr3e-5.yaml"
"""The demo's first ReFT setting (lr 3e-5, temperature 1), which dipped; the base of the lever table."""
DEMO_CONFIG = "configs/demo/reft_synthetic.yaml"
"""The demo's current ReFT setting (lr 2e-5 since 2026-12-03, 1e-5 before; temperature 0.7); the base of
the ``demo*`` settings."""

OLD_SETTINGS: dict[str, list[str]] = {
    "shared_head": [],
    "shared_head_vf0.5": ["--model.init_args.ppo.vf_coef=0.5"],
    "shared_head_critic_warmup20": ["--model.init_args.ppo.critic_warmup_iterations=20"],
    "value_model": ["VALUE_MODEL"],
    "value_model_critic_warmup20": ["VALUE_MODEL", "--model.init_args.ppo.critic_warmup_iterations=20"],
    "value_model_target_kl0.01": ["VALUE_MODEL", "--model.init_args.ppo.target_kl=0.01"],
    "value_model_batch64": ["VALUE_MODEL", "--data.init_args.batch_size=64"],
    "grpo4": [
        "--model.init_args.ppo.advantage=grpo", "--model.init_args.ppo.num_samples=4",
        "--data.init_args.batch_size=4",
    ],
    "grpo4_skip": [
        "--model.init_args.ppo.advantage=grpo", "--model.init_args.ppo.num_samples=4",
        "--data.init_args.batch_size=4", "--model.init_args.ppo.skip_uniform_groups=true",
    ],
    "rloo8_skip": [
        "--model.init_args.ppo.advantage=rloo", "--model.init_args.ppo.num_samples=8",
        "--data.init_args.batch_size=8", "--model.init_args.ppo.skip_uniform_groups=true",
    ],
}  # fmt: skip
LR_1E5 = "--model.init_args.optimizer.lr=1e-5"
OLD_SETTINGS.update({
    "value_model_lr1e-5": ["VALUE_MODEL", LR_1E5],
    "value_model_lr3e-6": ["VALUE_MODEL", "--model.init_args.optimizer.lr=3e-6"],
    "value_model_lr1e-5_temp0.7": ["VALUE_MODEL", LR_1E5, "--model.init_args.rollout.temperature=0.7"],
    "grpo4_skip_lr1e-5": [*OLD_SETTINGS["grpo4_skip"], LR_1E5],
})  # fmt: skip
RLOO4_SKIP = [
    "--model.init_args.ppo.advantage=rloo",
    "--model.init_args.ppo.num_samples=4",
    "--model.init_args.ppo.skip_uniform_groups=true",
]  # 16 questions x 4 samples = 64 rollouts a step, no critic
DEMO_SETTINGS: dict[str, list[str]] = {
    "demo": ["VALUE_MODEL"],
    "demo_temp0.5": ["VALUE_MODEL", LR_1E5, "--model.init_args.rollout.temperature=0.5"],
    "demo_lr1e-5": ["VALUE_MODEL", LR_1E5],  # `demo` before 2026-12-03
    "demo_lr2e-5": ["VALUE_MODEL", "--model.init_args.optimizer.lr=2e-5"],  # `demo` since
    "demo_lr3e-5": ["VALUE_MODEL", "--model.init_args.optimizer.lr=3e-5"],
    "demo_kl0.01": ["VALUE_MODEL", LR_1E5, "--model.init_args.ppo.kl_coef=0.01"],
    "demo_rloo4_skip": [*RLOO4_SKIP, LR_1E5],  # measured when the demo's lr was 1e-5
    "demo_rloo4_skip_lr3e-5": [*RLOO4_SKIP, "--model.init_args.optimizer.lr=3e-5"],
    "demo_rloo4_skip_lr1e-4": [*RLOO4_SKIP, "--model.init_args.optimizer.lr=1e-4"],
}  # fmt: skip
SETTINGS: dict[str, tuple[str, list[str]]] = {
    **{name: (OLD_CONFIG, overrides) for name, overrides in OLD_SETTINGS.items()},
    **{name: (DEMO_CONFIG, overrides) for name, overrides in DEMO_SETTINGS.items()},
}
"""Lever settings by name: (config, overrides). ``VALUE_MODEL`` becomes
``--model.init_args.value_model=<start>`` (a separate value model initialised from the start)."""


def run_setting(name: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """One ReFT run of setting ``name``; cached in its ``summary.json``."""
    run = Path(args.runs) / f"{name}_seed{seed}"
    summary_file = run / "summary.json"
    config, setting = SETTINGS[name]
    if summary_file.is_file():
        summary = json.loads(summary_file.read_text())
        if args.ood and "ood_test" not in summary:
            summary["ood_test"] = _ood_test(config, run)
            summary_file.write_text(json.dumps(summary, indent=1))
        return summary
    overrides = [f"--model.init_args.value_model={args.start}" if o == "VALUE_MODEL" else o for o in setting]
    started = time.perf_counter()
    reft(
        "fit", f"--config={config}", f"--seed_everything={seed}", f"--trainer.default_root_dir={run}",
        f"--trainer.max_epochs={args.passes}", f"--trainer.limit_train_batches={args.iterations}",
        f"--trainer.val_check_interval={args.val_every}", f"--model.init_args.model={args.start}",
        f"--data.init_args.shuffle_seed={seed}", *overrides, *args.extra,
    )  # fmt: skip
    minutes = (time.perf_counter() - started) / 60
    train, val = reft_curves(metric_rows(run))
    best_iteration, best_val = max(val, key=lambda v: v[1])
    summary = {
        "setting": name,
        "seed": seed,
        **dip_statistics([t["train/accuracy"] for t in train]),
        "val": val,
        "best_val": best_val,
        "best_iteration": best_iteration,
        "test": evaluate(config, str(run / "hf" / "best"), run / "test", "test"),
        "minutes": minutes,
    }
    if args.ood:
        summary["ood_test"] = _ood_test(config, run)
    summary_file.write_text(json.dumps(summary, indent=1))
    return summary


def _percent(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f}"


def _ood_test(config: str, run: Path) -> float:
    """Greedy accuracy of ``run``'s best-validation export on the 4-step split."""
    return evaluate(config, str(run / "hf" / "best"), run / "ood_test", "test", OOD_TEST)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--start", default="runs/demo/sft/hf/best", help="HF export ReFT starts from")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--iterations", type=int, default=100, help="PPO iterations per pass (at most)")
    parser.add_argument("--passes", type=int, default=1, help="passes over the training questions")
    parser.add_argument("--val-every", type=int, default=50)
    parser.add_argument("--ood", action="store_true", help="also test on the 4-step split (runs.OOD_TEST)")
    parser.add_argument("--parallel", type=int, default=1, help="runs at once (each gets 1 thread if > 1)")
    parser.add_argument("--runs", default="runs/bench_reft_levers")
    parser.add_argument("--out", default="docs/results/reft_levers")
    parser.add_argument("extra", nargs="*", help="further overrides passed to every `reft fit`")
    args = parser.parse_args()
    if args.parallel > 1:
        os.environ["OMP_NUM_THREADS"] = "1"
    runs = Path(args.runs)
    start_test = _cached_start_test(args.start, runs / "start_test")
    jobs = [(name, seed) for name in args.settings for seed in args.seeds]
    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        summaries = list(pool.map(lambda job: run_setting(*job, args), jobs))
    lines = [
        f"Start `{args.start}`: test {100 * start_test:.1f}%. {args.iterations} iterations per run; "
        "sampled training accuracy (%) of iterations 1-10, the lowest 10-iteration mean in 1-100, 91-100.",
        "",
        "| setting | seed | sampled 1-10 | lowest 10 | 91-100 | dip | best val (it.) | test at best val "
        "| vs start | 4-step test | minutes |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in summaries:
        lines.append(
            f"| {s['setting']} | {s['seed']} | {100 * s['first10']:.1f} | {100 * s['min10']:.1f} | "
            f"{100 * s['last10']:.1f} | {100 * (s['min10'] - s['first10']):+.1f} | "
            f"{100 * s['best_val']:.1f} ({s['best_iteration']}) | {100 * s['test']:.1f} | "
            f"{100 * (s['test'] - start_test):+.1f} | {_percent(s.get('ood_test'))} | {s['minutes']:.1f} |"
        )
    table = "\n".join(lines)
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(table + "\n")
    (out / "runs.json").write_text(json.dumps(summaries, indent=1))


def _cached_start_test(start: str, run: Path) -> float:
    cache = run / "test.json"
    if cache.is_file():
        return json.loads(cache.read_text())["test"]
    test = evaluate(DEMO_CONFIG, start, run, "test")
    cache.write_text(json.dumps({"test": test}))
    return test


if __name__ == "__main__":
    main()
