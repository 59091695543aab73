"""Sandbox throughput: programs/s for 256 correct SVAMP gold programs.

Compares the persistent ProgramExecutor pool with one ``python -c`` subprocess per program (the same
program text, prelude ``import math``/``import sympy`` included, plus a call of ``solution()``), and,
for reference, the same subprocess baseline without ``import sympy``.

    .venv/bin/python bench/sandbox_throughput.py [--programs 256] [--workers 2] [--baseline-sample 32]

The subprocess baselines run ``--baseline-sample`` programs sequentially and report programs/s;
the pool runs the whole batch. Needs ../shared/data beside the repository.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from reft_lightning.rewards.correctness import PCOT_PRELUDE, build_program
from reft_lightning.sandbox import ProgramExecutor

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "reft" / "svamp_python_sdp.json"


def gold_programs(count: int) -> tuple[list[str], list[float]]:
    records = json.loads(DATA.read_text())[:count]
    programs = [build_program(r["answer_cot"], r["question"], add_header=False) for r in records]
    return programs, [float(r["answer_value"]) for r in records]


def subprocess_rate(programs: list[str]) -> float:
    start = time.perf_counter()
    for program in programs:
        subprocess.run([sys.executable, "-c", program + "\nsolution()\n"], check=True, capture_output=True)
    return len(programs) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--baseline-sample", type=int, default=32)
    args = parser.parse_args()
    programs, answers = gold_programs(args.programs)

    start = time.perf_counter()
    with ProgramExecutor(timeout_s=10.0, memory_mb=1024, workers=args.workers) as pool:
        startup = time.perf_counter() - start
        pool.run(programs[:8])  # warm the pipes; startup is reported separately
        start = time.perf_counter()
        results = pool.run(programs)
        pool_rate = len(programs) / (time.perf_counter() - start)
    correct = sum(isinstance(r.value, float) and abs(r.value - a) <= 1e-2 for r, a in zip(results, answers))

    sample = programs[: args.baseline_sample]
    with_sympy = subprocess_rate(sample)
    without_sympy = subprocess_rate([p.replace(PCOT_PRELUDE, "import math\n", 1) for p in sample])

    rows = [
        (f"ProgramExecutor pool ({args.workers} workers)", pool_rate),
        ("python -c per program (same program)", with_sympy),
        ("python -c per program, no sympy import", without_sympy),
    ]
    print(f"{len(programs)} SVAMP gold programs; pool startup {startup:.2f} s; {correct} correct in the pool")
    print("| method | programs/s | pool speed-up |\n| --- | ---: | ---: |")
    for name, rate in rows:
        print(f"| {name} | {rate:.2f} | {pool_rate / rate:.1f}x |")


if __name__ == "__main__":
    main()
