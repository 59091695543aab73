"""Does ReFT beat SFT on the same questions? The paper's comparison at CPU scale, with its controls.

1. SFT: the base model on the synthetic training set for ``--sft-epochs`` (cosine-annealed lr,
   ``configs/demo/sft_synthetic.yaml``), one run per ``--sft-seeds``; the checkpoint with the best
   validation accuracy is the SFT result (the paper's SFT baseline trains 40 epochs).
2. Control (``--control-lrs``): continue SFT from that checkpoint for ``--control-epochs`` at each
   peak lr (cosine again). If none improves validation, the SFT run had reached its plateau.
3. ReFT from ``--start`` of the first SFT seed's run: ``best`` (the plateau itself) or ``epoch_K``
   (an early export: the paper's full protocol, ReFT from a short warm-up), one run per ``--seeds``,
   ``--reft-epochs`` passes over the same training questions, validation every ``--val-every``
   iterations.
4. Every run is tested (greedy, 500 held-out problems) at its best-validation checkpoint; test
   accuracy never chooses anything. Prints a markdown table and writes it, the curves (CSV) and a
   plot (accuracy, training reward and KL against training minutes) to ``--out``.

A stage whose run directory already holds ``summary.json`` is read back instead of rerun, so an
interrupted bench continues where it stopped. Directories are named by seed, lr, start and
``--tag`` only: change ``--runs`` or ``--tag`` when changing epochs or overrides. Examples (the
demo's base model, ``make demo``):

    python bench/reft_vs_sft.py --base runs/demo/base/hf/final --start best --seeds 0 1 2
    python bench/reft_vs_sft.py --base runs/demo/base/hf/final --start epoch_2 --reft-epochs 100 \\
        --control-lrs --runs runs/bench_full_protocol --out docs/results/full_protocol
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runs import epoch_curve, evaluate, metric_rows, pyplot, reft, reft_curves

SFT_CONFIG = "configs/demo/sft_synthetic.yaml"
REFT_CONFIG = "configs/demo/reft_synthetic_lr3e-5.yaml"


def _cached(run: Path, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``run/summary.json`` if a previous bench finished this stage, else ``compute()`` saved there."""
    summary_file = run / "summary.json"
    if summary_file.exists():
        print(f"reusing {summary_file}")
        return json.loads(summary_file.read_text())
    summary = compute()
    run.mkdir(parents=True, exist_ok=True)
    summary_file.write_text(json.dumps(summary))
    return summary


def sft(run: Path, model: str, epochs: int, seed: int, lr: float | None) -> dict[str, Any]:
    """One SFT run; returns its per-epoch validation curve and the test accuracy of its best epoch."""

    def compute() -> dict[str, Any]:
        lr_args = [] if lr is None else [f"--model.init_args.optimizer.lr={lr}"]
        reft(
            "fit",
            f"--config={SFT_CONFIG}",
            f"--model.init_args.model={model}",
            f"--seed_everything={seed}",
            f"--trainer.max_epochs={epochs}",
            f"--trainer.default_root_dir={run}",
            *lr_args,
        )
        val = epoch_curve(metric_rows(run))
        test = evaluate(SFT_CONFIG, str(run / "hf" / "best"), run / "test", "test")
        return {"val": val, "best_val": max(val), "best_epoch": val.index(max(val)) + 1, "test": test}

    return _cached(run, compute)


def reft_run(
    run: Path, start: str, epochs: int, seed: int, val_every: int, extra: list[str]
) -> dict[str, Any]:
    """One ReFT run from the export ``start``; returns its curves and the test accuracy at best validation."""

    def compute() -> dict[str, Any]:
        reft(
            "fit",
            f"--config={REFT_CONFIG}",
            f"--model.init_args.model={start}",
            f"--seed_everything={seed}",
            f"--data.init_args.shuffle_seed={seed}",
            f"--trainer.max_epochs={epochs}",
            "--trainer.max_steps=-1",
            f"--trainer.val_check_interval={val_every}",
            f"--trainer.default_root_dir={run}",
            *extra,
        )
        train, val = reft_curves(metric_rows(run))
        test = evaluate(REFT_CONFIG, str(run / "hf" / "best"), run / "test", "test")
        best_iteration, best_val = max(val, key=lambda v: v[1])
        return {
            "train": train,
            "val": val,
            "best_val": best_val,
            "best_iteration": best_iteration,
            "test": test,
        }

    return _cached(run, compute)


def start_accuracy(run: Path, model: str) -> dict[str, Any]:
    """Validation and test accuracy of the export ReFT starts from."""
    return _cached(
        run,
        lambda: {
            "val": evaluate(REFT_CONFIG, model, run / "val", "validate"),
            "test": evaluate(REFT_CONFIG, model, run / "test", "test"),
        },
    )


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def report(
    args: argparse.Namespace,
    sfts: dict[int, dict],
    controls: dict[float, dict],
    begin: dict,
    refts: dict[int, dict],
) -> str:
    """The markdown tables of the whole comparison."""
    reference = sfts[args.sft_seeds[0]]
    lines = [
        "SFT (cosine lr, best validation epoch):",
        "",
        "| SFT seed | epochs | best val % (epoch) | test % |",
        "| --- | --- | --- | --- |",
    ]
    for seed, s in sfts.items():
        lines.append(
            f"| {seed} | {len(s['val'])} | {_pct(s['best_val'])} ({s['best_epoch']}) | {_pct(s['test'])} |"
        )
    if controls:
        lines += [
            "",
            f"Control: SFT continued from seed {args.sft_seeds[0]}'s best checkpoint "
            f"(val {_pct(reference['best_val'])}%), {args.control_epochs} epochs, cosine:",
            "",
            "| peak lr | best val % (epoch) | change | test % at best val |",
            "| --- | --- | --- | --- |",
        ]
        for lr, c in controls.items():
            change = c["best_val"] - reference["best_val"]
            lines.append(
                f"| {lr:g} | {_pct(c['best_val'])} ({c['best_epoch']}) | {100 * change:+.1f} | "
                f"{_pct(c['test'])} |"
            )
    lines += [
        "",
        f"ReFT from `{args.start}` (val {_pct(begin['val'])}%, test {_pct(begin['test'])}%), "
        f"{args.reft_epochs} passes over the training questions, "
        f"overrides: `{' '.join(args.extra) or 'none'}`:",
        "",
        "| ReFT seed | best val % (iteration) | test % at best val | gain over SFT best | "
        "gain over start | score first / last 10% | minutes |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for seed, r in refts.items():
        scores = [t["train/score"] for t in r["train"]]
        tenth = max(1, len(scores) // 10)
        lines.append(
            f"| {seed} | {_pct(r['best_val'])} ({r['best_iteration']}) | {_pct(r['test'])} | "
            f"{100 * (r['test'] - reference['test']):+.1f} | {100 * (r['test'] - begin['test']):+.1f} | "
            f"{statistics.mean(scores[:tenth]):.3f} / {statistics.mean(scores[-tenth:]):.3f} | "
            f"{r['train'][-1]['minutes']:.1f} |"
        )
    gains = [100 * (r["test"] - reference["test"]) for r in refts.values()]
    if gains:
        spread = max(gains) - min(gains)
        lines += [
            "",
            f"Mean test gain of ReFT over the SFT best checkpoint: {statistics.mean(gains):+.1f} points "
            f"(min {min(gains):+.1f}, max {max(gains):+.1f}, spread {spread:.1f}; {len(gains)} seeds).",
        ]
    return "\n".join(lines)


def plot(
    sfts: dict[int, dict], controls: dict[float, dict], begin: dict, refts: dict[int, dict], path: Path
) -> None:
    """Validation accuracy, training score and KL of the ReFT runs against training minutes."""
    plt = pyplot()
    figure, axes = plt.subplots(1, 4, figsize=(19, 4))
    for seed, s in sfts.items():
        axes[0].plot(range(1, len(s["val"]) + 1), s["val"], marker=".", label=f"SFT seed {seed}")
    done = len(next(iter(sfts.values()))["val"])
    for lr, c in controls.items():
        axes[0].plot(range(done + 1, done + len(c["val"]) + 1), c["val"], label=f"control lr {lr:g}")
    axes[0].set(title="SFT validation accuracy", xlabel="epoch")
    for seed, r in refts.items():
        minutes = [t["minutes"] for t in r["train"]]
        window = max(1, len(minutes) // 20)
        for axis, key in ((axes[2], "train/score"), (axes[3], "train/kl")):
            values = [t[key] for t in r["train"]]
            smooth = [statistics.mean(values[max(0, i - window + 1) : i + 1]) for i in range(len(values))]
            axis.plot(minutes, smooth, label=f"seed {seed}")
        axes[1].plot(
            [0.0] + [minutes[i - 1] for i, _ in r["val"]],
            [begin["val"]] + [v for _, v in r["val"]],
            marker="o",
            label=f"ReFT seed {seed}",
        )
    reference = next(iter(sfts.values()))["best_val"]
    axes[1].axhline(reference, color="gray", linestyle="--", label="SFT best")
    axes[1].set(title="ReFT validation accuracy (greedy)", xlabel="training minutes")
    axes[2].set(title="ReFT training score (sampled, moving avg)", xlabel="training minutes")
    axes[3].set(title="KL to reference (nats/seq, moving avg)", xlabel="training minutes")
    for axis in axes:
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", required=True, help="HF export of the base model SFT starts from")
    parser.add_argument("--sft-epochs", type=int, default=40)
    parser.add_argument("--sft-seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--control-lrs", type=float, nargs="*", default=[3e-5, 1e-4, 3e-4])
    parser.add_argument("--control-epochs", type=int, default=10)
    parser.add_argument(
        "--start", default="best", help="`best` or `epoch_K`: the SFT export ReFT starts from"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="ReFT seeds")
    parser.add_argument("--reft-epochs", type=int, default=5, help="passes over the training questions")
    parser.add_argument("--val-every", type=int, default=47, help="ReFT iterations between validations")
    parser.add_argument("--runs", default="runs/bench_reft_vs_sft")
    parser.add_argument("--out", default="docs/results/reft_vs_sft")
    parser.add_argument("--tag", default="", help="suffix of the ReFT run directories (one per setting)")
    parser.add_argument("extra", nargs="*", help="further overrides for every `reft fit` of ReFT")
    args = parser.parse_args()
    runs, out = Path(args.runs), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    sfts = {
        seed: sft(runs / f"sft_seed{seed}", args.base, args.sft_epochs, seed, None) for seed in args.sft_seeds
    }
    plateau = runs / f"sft_seed{args.sft_seeds[0]}" / "hf" / "best"
    controls = {
        lr: sft(runs / f"control_lr{lr:g}", str(plateau), args.control_epochs, 0, lr)
        for lr in args.control_lrs
    }
    start = str(plateau.parent / args.start)
    begin = start_accuracy(runs / f"start_{args.start}", start)
    name = f"reft_from_{args.start}{args.tag}"
    refts = {
        seed: reft_run(runs / f"{name}_seed{seed}", start, args.reft_epochs, seed, args.val_every, args.extra)
        for seed in args.seeds
    }

    table = report(args, sfts, controls, begin, refts)
    print(table)
    (out / "table.md").write_text(table + "\n")
    (out / "curves.json").write_text(
        json.dumps({"sft": sfts, "control": controls, "start": begin, "reft": refts})
    )
    plot(sfts, controls, begin, refts, out / "curves.png")


if __name__ == "__main__":
    main()
