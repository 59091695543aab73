"""The paper's Tables 2 and 4 at CPU scale: SFT, offline and online self-training and ReFT from one
warm-up, then majority voting and reward-model reranking on top of SFT and ReFT.

Every method starts from the same warm-up export (``--warmup``, e.g. ``make demo``'s
``runs/demo/sft/hf/epoch_12``) on the demo's synthetic questions, once per ``--seeds``:

1. samples: ``reft predict`` draws ``--samples`` solutions per training and per validation question
   from the warm-up (temperature ``--temperature``, the demo's rollout temperature).
2. SFT: continued on the gold chains at lr 1e-5 (constant) for ``--steps`` optimizer steps (the
   demo's SFT control: as many steps as one ReFT pass takes).
3. offline self-training: the same, on the gold chains plus up to ``--samples`` distinct correct
   samples per question from step 1 (the paper keeps 10 of 100 and starts from the base model;
   here from the warm-up, like every method, so the rows differ only in their training signal).
4. online self-training and 5. ReFT: one pass over the training questions (94 iterations of 16),
   with the demo's rollout settings (``configs/demo/online_self_training_synthetic.yaml``,
   ``configs/demo/reft_synthetic.yaml`` with a separate value model, as ``make demo``, at the lr
   of the other rows, 1e-5).
6. every run is tested greedily at its best-validation export.
7. a reward model (``configs/demo/reward_model_synthetic.yaml``) is trained from the warm-up on the
   step-1 samples, selected on validation rerank; SFT and ReFT each sample ``--samples`` solutions
   per test question: voting@k comes from those samples, rerank@k from the reward model.

A step whose output exists is not rerun, so an interrupted bench continues. Writes the tables to
``--out`` (Markdown, mean and spread over seeds) and the runs' curves with ``reft report``.

    python bench/paper_tables.py --warmup runs/demo/sft/hf/epoch_12 --seeds 0 1 2 \\
        --runs runs/paper_tables --out docs/results/paper_tables.md
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from reft_lightning.data.predictions import read_predictions

from runs import last_metric

SFT = "configs/demo/sft_synthetic.yaml"
ONLINE = "configs/demo/online_self_training_synthetic.yaml"
REFT = "configs/demo/reft_synthetic.yaml"
REWARD_MODEL = "configs/demo/reward_model_synthetic.yaml"
CONTROL_OPTIMIZER = "--model.init_args.optimizer={lr: 1.0e-5, schedule: constant, warmup_ratio: 0.0}"
METHODS = ("sft", "offline", "online", "reft")
"""Table 2's rows, in the paper's order."""
TITLES = {"sft": "SFT", "offline": "Offline self-training", "online": "Online self-training", "reft": "ReFT"}


def reft_command(*args: str) -> list[str]:
    """``reft <args>`` in a fresh interpreter, without the progress bar."""
    return [sys.executable, "-m", "reft_lightning.cli", *args, "--trainer.enable_progress_bar=false"]


def run_all(jobs: Sequence[tuple[Path, list[str]]], parallel: int) -> None:
    """Run the ``(marker, command)`` jobs whose marker file is missing, ``parallel`` at a time, one
    thread each; a failed job stops the bench with its log's tail."""
    pending = [(marker, command) for marker, command in jobs if not marker.exists()]
    running: list[tuple[Path, list[str], subprocess.Popen[bytes], Path]] = []
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    while pending or running:
        while pending and len(running) < parallel:
            marker, command = pending.pop(0)
            marker.parent.mkdir(parents=True, exist_ok=True)
            log = marker.with_suffix(".log")
            print(f"[{time.strftime('%H:%M:%S')}] start: {' '.join(command[3:])}", flush=True)
            process = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
            running.append((marker, command, process, log))
        time.sleep(2)
        for job in list(running):
            marker, command, process, log = job
            if process.poll() is None:
                continue
            running.remove(job)
            if process.returncode != 0:
                raise SystemExit(
                    f"failed ({process.returncode}): {' '.join(command)}\n{log.read_text()[-3000:]}"
                )
            marker.write_text("done\n")


def sampling(samples: int, temperature: float) -> str:
    settings = f"num_samples: {samples}, temperature: {temperature}, vote_k: [{samples}]"
    return f"--model.init_args.sampling_eval={{{settings}}}"


def predict(model: str, root: Path, split: str, args: argparse.Namespace) -> tuple[Path, list[str]]:
    """A job that writes ``samples`` solutions per question of ``split`` to ``{root}/predictions.jsonl``."""
    command = reft_command(
        "predict",
        f"--config={SFT}",
        f"--model.init_args.model={model}",
        f"--trainer.default_root_dir={root}",
        f"--data.init_args.predict_split={split}",
        sampling(args.samples, args.temperature),
    )
    return root / "done", command


def train(method: str, seed: int, root: Path, samples_train: Path, args: argparse.Namespace) -> list[str]:
    seeded = [
        f"--seed_everything={seed}",
        f"--data.init_args.shuffle_seed={seed}",
        f"--trainer.default_root_dir={root}",
        f"--model.init_args.model={args.warmup}",
    ]
    steps = [
        f"--trainer.max_steps={args.steps}",
        "--trainer.max_epochs=1000",
        CONTROL_OPTIMIZER,
        f"--trainer.val_check_interval={args.steps // 2}",
    ]  # validated twice, as ReFT
    if method == "sft":
        return reft_command("fit", f"--config={SFT}", *seeded, *steps)
    if method == "offline":
        return reft_command(
            "fit",
            f"--config={SFT}",
            *seeded,
            *steps,
            f"--data.init_args.train_predictions={samples_train}",
            f"--data.init_args.samples_per_question={args.samples}",
        )
    if method == "online":
        return reft_command("fit", f"--config={ONLINE}", *seeded)
    return reft_command(
        "fit", f"--config={REFT}", *seeded, f"--model.init_args.value_model={args.warmup}",
        "--model.init_args.optimizer.lr=1e-5",  # every method's lr here (the demo's ReFT: 2e-5 since 12-03)
    )  # fmt: skip


def greedy_test(config: str, model: Path, root: Path) -> tuple[Path, list[str]]:
    """A job that tests the export ``model`` greedily into ``root``."""
    command = reft_command(
        "test", f"--config={config}", f"--model.init_args.model={model}", f"--trainer.default_root_dir={root}"
    )
    return root / "done", command


def config_of(method: str) -> str:
    return {"sft": SFT, "offline": SFT, "online": ONLINE, "reft": REFT}[method]


def mean(values: list[float]) -> float:
    return statistics.mean(values)


def mean_spread(values: list[float]) -> str:
    """``mean ± sd`` in percent (``sd`` over seeds; a single value alone)."""
    if len(values) == 1:
        return f"{100 * values[0]:.1f}"
    return f"{100 * statistics.mean(values):.1f} ± {100 * statistics.stdev(values):.1f}"


def voting(path: Path, k: int) -> float:
    """Mean voting@k of a prediction file (each record carries its question's voting@k)."""
    records = [line for line in path.read_text().splitlines() if line.strip()]
    return statistics.mean(json.loads(line)[f"voting@{k}"] for line in records)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--warmup", required=True, help="the warm-up export every method starts from")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--samples", type=int, default=8, help="samples per question (voting@k, rerank@k, data)"
    )
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument(
        "--steps", type=int, default=188, help="optimizer steps of SFT and offline self-training"
    )
    parser.add_argument("--parallel", type=int, default=2, help="jobs at once, one thread each")
    parser.add_argument("--runs", type=Path, default=Path("runs/paper_tables"))
    parser.add_argument("--out", type=Path, default=Path("docs/results/paper_tables.md"))
    args = parser.parse_args()
    runs, k = args.runs, args.samples
    started = time.time()

    # 1. samples of the training and validation questions from the warm-up
    samples = {split: runs / f"samples_{split}" for split in ("train", "val")}
    run_all([predict(args.warmup, samples[split], split, args) for split in samples], args.parallel)
    samples_train = samples["train"] / "predictions.jsonl"

    # 2-5. the four methods, every seed; 7a. the reward model
    jobs = [
        (runs / f"{m}_seed{s}" / "done", train(m, s, runs / f"{m}_seed{s}", samples_train, args))
        for s in args.seeds
        for m in METHODS
    ]
    reward_model = runs / "reward_model"
    jobs.append(
        (
            reward_model / "done",
            reft_command(
                "fit",
                f"--config={REWARD_MODEL}",
                f"--trainer.default_root_dir={reward_model}",
                f"--model.init_args.model={args.warmup}",
                f"--data.init_args.train_predictions={samples_train}",
                f"--data.init_args.val_predictions={samples['val'] / 'predictions.jsonl'}",
                f"--model.init_args.rerank_k=[1, {k}]",
            ),
        )
    )
    run_all(jobs, args.parallel)

    # 6. greedy test of every run; 7b. test samples of SFT and ReFT
    tests = [
        greedy_test(config_of(m), runs / f"{m}_seed{s}" / "hf" / "best", runs / f"{m}_seed{s}_test")
        for s in args.seeds
        for m in METHODS
    ]
    tests.append(greedy_test(SFT, Path(args.warmup), runs / "warmup_test"))
    tests += [
        predict(str(runs / f"{m}_seed{s}" / "hf" / "best"), runs / f"{m}_seed{s}_samples", "test", args)
        for s in args.seeds
        for m in ("sft", "reft")
    ]
    run_all(tests, args.parallel)
    # 7c. rerank@k of the test samples by the reward model
    rerank = [
        (
            runs / f"{m}_seed{s}_rerank" / "done",
            reft_command(
                "test",
                f"--config={REWARD_MODEL}",
                f"--model.init_args.model={reward_model / 'hf' / 'best'}",
                f"--trainer.default_root_dir={runs / f'{m}_seed{s}_rerank'}",
                f"--model.init_args.rerank_k=[1, {k}]",
                f"--data.init_args.train_predictions={samples_train}",
                f"--data.init_args.test_predictions={runs / f'{m}_seed{s}_samples' / 'predictions.jsonl'}",
            ),
        )
        for s in args.seeds
        for m in ("sft", "reft")
    ]
    run_all(rerank, args.parallel)

    greedy = {
        m: [last_metric(runs / f"{m}_seed{s}_test", "test/accuracy") for s in args.seeds] for m in METHODS
    }
    voted = {
        m: [voting(runs / f"{m}_seed{s}_samples" / "predictions.jsonl", k) for s in args.seeds]
        for m in ("sft", "reft")
    }
    reranked = {
        m: [last_metric(runs / f"{m}_seed{s}_rerank", f"test/rerank@{k}") for s in args.seeds]
        for m in ("sft", "reft")
    }
    oracle = {
        m: [last_metric(runs / f"{m}_seed{s}_rerank", "test/oracle") for s in args.seeds]
        for m in ("sft", "reft")
    }
    train_samples = read_predictions(samples_train)
    sampled = statistics.mean(s.correct for r in train_samples for s in r.samples)
    warmup = last_metric(runs / "warmup_test", "test/accuracy")
    write_page(args, warmup, greedy, voted, reranked, oracle, sampled, (time.time() - started) / 60)
    curves = args.out.with_name(args.out.stem + "_curves.md")
    first = [str(runs / f"{m}_seed{args.seeds[0]}") for m in METHODS]
    subprocess.run(
        [sys.executable, "-m", "reft_lightning.cli", "report", *first, "--out", str(curves)], check=True
    )


def ordering(claims: list[tuple[str, float, str, float]]) -> list[str]:
    """One line per claim of the paper ``(a, mean a, b, mean b)``: "a > b": whether it holds here."""
    return [
        f"- {a} > {b}: {'holds' if x > y else 'does not hold'} here ({100 * x:.1f} vs {100 * y:.1f})."
        for a, x, b, y in claims
    ]


def write_page(
    args: argparse.Namespace,
    warmup: float,
    greedy: dict[str, list[float]],
    voted: dict[str, list[float]],
    reranked: dict[str, list[float]],
    oracle: dict[str, list[float]],
    sampled: float,
    minutes: float,
) -> None:
    k, seeds = args.samples, " ".join(map(str, args.seeds))
    lines = [
        "# The paper's Tables 2 and 4 on the synthetic task",
        "",
        f"Test accuracy (%, 500 held-out problems), mean ± standard deviation over seeds {seeds}; every "
        f"method starts from `{args.warmup}`. Command:",
        "",
        f"    python bench/paper_tables.py --warmup {args.warmup} --seeds {seeds} --samples {k} "
        f"--runs {args.runs} --out {args.out}",
        "",
        f"({minutes:.0f} min on this machine for the steps this invocation ran.) Samples of the training "
        f"questions from the warm-up (temperature {args.temperature}): {100 * sampled:.1f}% correct.",
        "",
        "## Table 2: greedy accuracy",
        "",
        "| method | test |",
        "| --- | --- |",
        f"| warm-up (the start of every row) | {100 * warmup:.1f} |",
        *[f"| {TITLES[m]} | {mean_spread(greedy[m])} |" for m in METHODS],
        "",
        f"## Table 4: {k} samples per question",
        "",
        f"| method | greedy | voting@{k} | rerank@{k} | oracle (any of {k} correct) |",
        "| --- | --- | --- | --- | --- |",
        *[
            "| "
            + " | ".join([TITLES[m], *(mean_spread(v[m]) for v in (greedy, voted, reranked, oracle))])
            + " |"
            for m in ("sft", "reft")
        ],
        "",
        "## The paper's ordering at this scale",
        "",
        *ordering(
            [
                (f"{TITLES[a]}", mean(greedy[a]), f"{TITLES[b]}", mean(greedy[b]))
                for a, b in (
                    ("reft", "offline"),
                    ("reft", "online"),
                    ("reft", "sft"),
                    ("offline", "sft"),
                    ("online", "sft"),
                )
            ]
        ),
        *ordering(
            [
                ("ReFT + voting", mean(voted["reft"]), "SFT + voting", mean(voted["sft"])),
                ("ReFT + rerank", mean(reranked["reft"]), "SFT + rerank", mean(reranked["sft"])),
                ("SFT + rerank", mean(reranked["sft"]), "SFT + voting", mean(voted["sft"])),
                ("ReFT + rerank", mean(reranked["reft"]), "ReFT + voting", mean(voted["reft"])),
            ]
        ),
        "",
        "Differences under about 3 points are within the noise of 500 test problems.",
        "",
        f"Curves of seed {args.seeds[0]}: [{args.out.stem}_curves.md]({args.out.stem}_curves.md).",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
