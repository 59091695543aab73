"""Soak: a tiny ReFT run of many iterations, killed in the middle and resumed, against one run
straight through. Reports memory over time (flat, or by how much it grows) and whether the resumed
run ends with the same weights.

1. Build a tiny offline model (``reft_lightning.tiny``) in ``--out``.
2. Run ReFT (``configs/demo/reft_synthetic.yaml``, validation off) for ``--iterations`` PPO
   iterations with ``last.ckpt`` every ``--every``, recording resident memory every ``--every``.
3. Run it again, SIGKILLed at iteration ``--kill-at``, then resumed with ``--ckpt_path last``.
4. Print a table: memory at the first record, the middle and the end, the growth per 1,000
   iterations (least squares over the records after the first), and the largest weight difference
   between the two final exports (0 when the resume is exact).

    python bench/soak.py --out runs/soak --iterations 2000 --every 100 --kill-at 1050

The two runs go at once, one thread each. Measured numbers: docs/results/soak.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml
from safetensors.torch import load_file

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
CONFIG = REPO / "configs" / "demo" / "reft_synthetic.yaml"
BATCH = 4
"""Questions per iteration."""


def _config(out: Path, name: str, args: argparse.Namespace, kill_at: int | None) -> Path:
    config = yaml.safe_load(CONFIG.read_text())
    per_epoch = args.train_questions // BATCH
    config["trainer"].update(
        max_epochs=-(-args.iterations // per_epoch), limit_train_batches=min(per_epoch, args.iterations),
        limit_val_batches=0, num_sanity_val_steps=0, val_check_interval=None, enable_progress_bar=False,
        log_every_n_steps=args.every, default_root_dir=str(out / name),
    )  # fmt: skip
    callbacks = [
        {"class_path": "reft_lightning.LastCheckpoint", "init_args": {"every_n_train_batches": args.every}},
        {"class_path": "reft_lightning.HFExport", "init_args": {"export_best": False}},
        {"class_path": "soak_probe.RecordMemory", "init_args": {"out": str(out / f"{name}.memory.csv"),
                                                                "every": args.every}},
    ]  # fmt: skip
    if kill_at is not None:
        callbacks.append({"class_path": "soak_probe.KillAtBatch", "init_args": {"batch": kill_at}})
    config["trainer"]["callbacks"] = callbacks
    init = config["model"]["init_args"]
    init.update(model=str(out / "model"), rollout={"max_new_tokens": args.max_new_tokens, "temperature": 0.7})
    init["eval_generation"] = {"max_new_tokens": args.max_new_tokens}
    config["data"]["init_args"].update(
        num_train=args.train_questions, num_val=4, num_test=4, batch_size=BATCH, eval_batch_size=4
    )
    path = out / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _reft(config: Path, *extra: str) -> int:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(BENCH)]), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "reft_lightning.cli", "fit", f"--config={config}", *extra]
    with open(config.with_suffix(".log"), "a") as log:
        return subprocess.run(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT).returncode


def _straight(out: Path, args: argparse.Namespace) -> None:
    status = _reft(_config(out, "straight", args, None))
    if status != 0:
        raise SystemExit(f"the straight run failed ({status}): see {out / 'straight.log'}")


def _killed_and_resumed(out: Path, args: argparse.Namespace) -> None:
    status = _reft(_config(out, "killed", args, args.kill_at))
    if status != -9:
        raise SystemExit(f"the run to kill exited {status}, not by SIGKILL: see {out / 'killed.log'}")
    status = _reft(_config(out, "killed", args, None), "--ckpt_path=last")
    if status != 0:
        raise SystemExit(f"the resumed run failed ({status}): see {out / 'killed.log'}")


def memory_records(path: Path) -> list[tuple[int, float]]:
    return [(int(i), float(mb)) for i, mb, _ in (line.split(",") for line in path.read_text().splitlines())]


def growth_per_1000(records: list[tuple[int, float]]) -> float:
    """Least-squares slope of resident memory (MiB per 1,000 iterations) after the first record."""
    points = records[1:]
    if len(points) < 2:
        return float("nan")
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    covariance = sum((x - mean_x) * (y - mean_y) for x, y in points)
    variance = sum((x - mean_x) ** 2 for x, _ in points)
    return 1000 * covariance / variance


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("runs/soak"))
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--every", type=int, default=100, help="last.ckpt and memory every N iterations")
    parser.add_argument("--kill-at", type=int, default=1050)
    parser.add_argument("--train-questions", type=int, default=400)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "model").exists():
        subprocess.run(
            [sys.executable, "-m", "reft_lightning.tiny", "--out", str(out / "model"), "--size", "nano",
             "--vocab-size", "600"],
            check=True, cwd=REPO,
        )  # fmt: skip
    started = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        for future in [pool.submit(_straight, out, args), pool.submit(_killed_and_resumed, out, args)]:
            future.result()
    minutes = (time.perf_counter() - started) / 60

    straight, resumed = (
        load_file(out / name / "hf" / "final" / "model.safetensors") for name in ("straight", "killed")
    )
    difference = max(float((straight[k] - resumed[k]).abs().max()) for k in straight)
    print(f"soak: {args.iterations} ReFT iterations, last.ckpt every {args.every}, kill at {args.kill_at}; "
          f"{minutes:.1f} min for both runs")  # fmt: skip
    print("| run | RSS first (MiB) | RSS middle | RSS end | growth / 1,000 it. (MiB) |")
    print("| --- | --- | --- | --- | --- |")
    for name in ("straight", "killed"):
        records = memory_records(out / f"{name}.memory.csv")
        label = name if name == "straight" else "killed + resumed (resumed part)"
        if name == "killed":
            records = [r for r in records if r[0] > args.kill_at]
        mid = records[len(records) // 2]
        print(f"| {label} | {records[0][1]:.0f} @ {records[0][0]} | {mid[1]:.0f} @ {mid[0]} | "
              f"{records[-1][1]:.0f} @ {records[-1][0]} | {growth_per_1000(records):+.1f} |")  # fmt: skip
    print(
        f"largest |weight difference| straight vs killed + resumed: {difference:.3g} "
        f"({'exact' if difference == 0 else 'NOT exact'})"
    )


if __name__ == "__main__":
    main()
