"""Where a ReFT iteration's time goes against this machine's arithmetic limit: the matrix-multiply
FLOPs of each step (counted), its seconds, the achieved GFLOP/s and their share of the measured peak;
and what issue 13's target (twice TRL's throughput at equal work) would ask of the arithmetic.

For each side of ``bench/ppo_vs_trl.py`` named in ``--sides`` (same workload: micro GPT-2, ``--batch``
rollouts x ``--tokens`` new tokens, separate value model, fp32, one thread):

1. a counted run: the side with ``compile_blocks`` and ``engine.compile`` off, under
   ``flop_profiler.FlopProfiler`` (FLOPs of each step; compiling changes the kernels, not the FLOPs);
2. a timed run: the side as ``bench/ppo_vs_trl.py`` runs it (median seconds of each step over the
   iterations after ``--skip``);

then one run of TRL 1.12.0 (``TRL_SIDE``) for its seconds per iteration, and the machine's rates on
``--threads`` threads: ``torch.mm`` at 1024^3 (the peak) and at the model's MLP shape (rows =
``--batch`` x (prompt + ``--tokens``)), and SDPA forward and backward at the model's attention shape
with a causal and padding mask (the kernel the training forward uses). The kernel floor of a side is
its time if every counted op ran at those rates (matrix multiplies at the MLP shape's, attention at
SDPA's) and nothing else took time: a lower bound for this torch build on this machine.
TRL's work is taken as our defaults' counted FLOPs (the same forwards and backwards; TRL computes
logits on every position, so it does a little more). Seconds come from one run per side here;
``bench/ppo_vs_trl.py`` (alternating runs) is the comparison of record.

    python bench/step_flops.py --runs runs/step_flops --out docs/results/step_flops.md
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import sdpa_backward_flop_count, sdpa_flop_count
from transformers import AutoConfig

from ppo_vs_trl import OURS, STEP_ORDER, TRL_SIDE, ours, slug, trl, workload

DEFAULTS_SIDE = "reft_lightning"
"""Our side whose work stands for TRL's (the official code's order of work, no option on)."""
FASTEST_SIDE = "reft_lightning, speed options, static engine"
"""Our fastest side at equal work (a separate value model) in ``bench/ppo_vs_trl.py``'s table."""
COUNTED_STEPS = ("rollout", "evaluate", "optimise")
"""The steps that do arithmetic (the others score, shape and estimate: no matrix multiplies)."""


def eager(overrides: list[str]) -> list[str]:
    """``overrides`` with compilation off (the same FLOPs, countable by ``FlopCounterMode``)."""
    eager_overrides = [o.replace("compile_blocks=true", "compile_blocks=false") for o in overrides]
    if "--model.init_args.engine.name=static" in overrides:
        eager_overrides.append("--model.init_args.engine.compile=false")
    return eager_overrides


StepFlops = dict[str, dict[str, float]]
"""GFLOP by step and op: ``{"optimise": {"aten.mm": 101.5, ...}, ...}``."""


def counted_flops(
    model: Path, run: Path, args: argparse.Namespace, overrides: list[str], iterations: int
) -> StepFlops:
    """GFLOP by step and op of the last of ``iterations`` counted iterations of ``overrides``' eager run
    (``args``: the workload, as :func:`ours` takes it)."""
    counting = argparse.Namespace(**{**vars(args), "iterations": iterations})
    profiler = '--trainer.profiler={"class_path": "flop_profiler.FlopProfiler"}'
    ours(model, run, counting, [*eager(overrides), profiler])
    last = json.loads(next(run.rglob("step_flops.jsonl")).read_text().splitlines()[-1])
    return {step: {op: flops / 1e9 for op, flops in last.get(step, {}).items()} for step in STEP_ORDER}


def total(flops: StepFlops, step: str | None = None) -> float:
    """GFLOP of ``step`` (``None``: of the whole iteration)."""
    return sum(sum(ops.values()) for name, ops in flops.items() if step in (None, name))


def kernel_floor(flops: StepFlops, rates: dict[str, float]) -> float:
    """Seconds of ``flops`` with each op at its rate (GFLOP/s): attention forward and backward at
    ``rates["attention forward"]`` and ``rates["attention backward"]``, every other op at ``rates["mlp"]``."""
    seconds = 0.0
    for ops in flops.values():
        for op, gflop in ops.items():
            kind = "mlp"
            if "scaled_dot_product" in op:
                kind = "attention backward" if op.endswith("backward") else "attention forward"
            seconds += gflop / rates[kind]
    return seconds


def best_seconds(call: Callable[[], object], repeats: int) -> float:
    """Seconds of one ``call``: the best of 3 means over ``repeats`` calls, after one warm-up call."""
    call()
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(repeats):
            call()
        best = min(best, (time.perf_counter() - started) / repeats)
    return best


def matmul_rate(shape: tuple[int, int, int], repeats: int = 20) -> float:
    """GFLOP/s of ``torch.mm`` of ``[m, k] x [k, n]`` in float32 on this process's threads."""
    m, k, n = shape
    a, b = torch.randn(m, k), torch.randn(k, n)
    return 2 * m * k * n / best_seconds(lambda: torch.mm(a, b), repeats) / 1e9


def attention_rates(
    rows: int, heads: int, length: int, head_dim: int, repeats: int = 5
) -> tuple[float, float]:
    """GFLOP/s of float32 SDPA forward and of its backward on ``[rows, heads, length, head_dim]``
    queries, keys and values, with a causal mask and the left padding of a batch of prompts
    (row ``i`` padded by ``i % 16`` positions), FLOPs by torch's formulas (``FlopCounterMode``'s)."""
    q, k, v = (torch.randn(rows, heads, length, head_dim, requires_grad=True) for _ in range(3))
    padded = torch.arange(length).unsqueeze(0) < (torch.arange(rows) % 16).unsqueeze(1)  # [rows, length]
    mask = torch.ones(length, length, dtype=torch.bool).tril() & ~padded[:, None, None, :]
    mask |= torch.eye(length, dtype=torch.bool)  # a padding position attends to itself: no empty row
    shape = [rows, heads, length, head_dim]
    forward = best_seconds(lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask), repeats)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    grad = torch.randn_like(out)
    backward = best_seconds(lambda: torch.autograd.grad(out, (q, k, v), grad, retain_graph=True), repeats)
    forward_rate = sdpa_flop_count(shape, shape, shape) / forward / 1e9
    return forward_rate, sdpa_backward_flop_count(shape, shape, shape, shape) / backward / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, help="a causal LM directory (default: a new micro GPT-2)")
    parser.add_argument("--sides", nargs="+", default=[DEFAULTS_SIDE, FASTEST_SIDE])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--prompt", type=int, default=57, help="prompt tokens of the rates' shapes")
    parser.add_argument("--iterations", type=int, default=8, help="iterations of a timed run")
    parser.add_argument("--skip", type=int, default=2, help="first iterations of a timed run left out")
    parser.add_argument("--counted-iterations", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=Path, default=Path("runs/step_flops"))
    parser.add_argument("--out", type=Path, default=Path("docs/results/step_flops.md"))
    args = parser.parse_args()
    if DEFAULTS_SIDE not in args.sides:
        raise SystemExit(f"--sides must include {DEFAULTS_SIDE!r}: its FLOPs stand for TRL's")
    torch.set_num_threads(args.threads)

    python, model, questions = workload(args.model, args.runs)

    flops, seconds = {}, {}
    for side in args.sides:
        flops[side] = counted_flops(
            model, args.runs / f"{slug(side)}_counted", args, OURS[side], args.counted_iterations
        )
        timed = ours(model, args.runs / f"{slug(side)}_timed", args, OURS[side])
        steps = {step: timed.steps[f"time/{step}"] for step in STEP_ORDER}
        seconds[side] = {step: statistics.median(values[args.skip :]) for step, values in steps.items()}
        seconds[side]["iteration"] = statistics.median(timed.seconds[args.skip :])
        print(f"{side}: GFLOP {flops[side]}, seconds {seconds[side]}", flush=True)
    trl_run = trl(python, model, questions, args.runs / "trl", args, None)
    trl_seconds = statistics.median(trl_run.seconds[args.skip :])

    config = AutoConfig.from_pretrained(model)
    width, heads, length = config.n_embd, config.n_head, args.prompt + args.tokens
    rows = args.batch * length
    forward, backward = attention_rates(args.batch, heads, length, width // heads)
    rates = {
        "peak": matmul_rate((1024, 1024, 1024)),
        "mlp": matmul_rate((rows, width, 4 * width)),
        "attention forward": forward,
        "attention backward": backward,
    }
    write_table(args, flops, seconds, trl_seconds, rates, shapes=f"{rows} x {width} x {4 * width}")


def write_table(
    args: argparse.Namespace,
    flops: dict[str, StepFlops],
    seconds: dict[str, dict[str, float]],
    trl_seconds: float,
    rates: dict[str, float],
    shapes: str,
) -> None:
    """The table of steps by side, the machine's rates, the kernel floors and what the target asks,
    to stdout and ``args.out``."""
    peak = rates["peak"]
    lines = [
        f"A micro GPT-2, {args.batch} rollouts x {args.tokens} new tokens, separate value model, fp32, "
        f"{args.threads} thread(s), torch {torch.__version__}. Rates measured here (best of 3): `torch.mm` "
        f"1024^3 {peak:.1f} GFLOP/s (the peak), `torch.mm` at the MLP shape {shapes} {rates['mlp']:.1f}, "
        f"SDPA at the attention shape forward {rates['attention forward']:.1f} and backward "
        f"{rates['attention backward']:.1f}. GFLOP: matrix multiplies and attention, forward and backward, "
        "counted by `FlopCounterMode` (`bench/flop_profiler.py`).",
        "",
        "| implementation | step | GFLOP | of which attention | seconds, median | GFLOP/s | share of peak "
        "| kernel floor (s) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for side in args.sides:
        side_flops = flops[side]
        for step in COUNTED_STEPS:
            gflop, spent = total(side_flops, step), seconds[side][step]
            attention = sum(v for op, v in side_flops[step].items() if "scaled_dot_product" in op)
            floor = kernel_floor({step: side_flops[step]}, rates)
            cells = (f"{gflop:.1f}", f"{attention:.1f}", *_rate_cells(gflop, spent, peak), f"{floor:.2f}")
            lines.append(_row(side, step, *cells))
        gflop, spent = total(side_flops), seconds[side]["iteration"]
        floor = kernel_floor(side_flops, rates)
        lines.append(_row(side, "whole iteration (wall clock)", f"{gflop:.1f}", "",
                          *_rate_cells(gflop, spent, peak), f"{floor:.2f}"))  # fmt: skip
    trl_work = total(flops[DEFAULTS_SIDE])
    cells = (f"{trl_work:.1f}", "", *_rate_cells(trl_work, trl_seconds, peak), "")
    lines.append(_row(f"{TRL_SIDE} (our defaults' GFLOP)", "whole iteration (wall clock)", *cells))
    target = trl_seconds / 2
    lines += ["", f"Twice {TRL_SIDE}'s throughput is {target:.2f} s per iteration here. {TRL_SIDE}'s time "
              "over a kernel floor is the most any implementation of that work could gain on these kernels:",
              ""]  # fmt: skip
    for side in args.sides:
        gflop, floor = total(flops[side]), kernel_floor(flops[side], rates)
        lines.append(f"- {side}: {gflop:.1f} GFLOP; at the peak {gflop / peak:.2f} s, at the kernel floor "
                     f"{floor:.2f} s ({TRL_SIDE} / floor {trl_seconds / floor:.2f}); {target:.2f} s needs "
                     f"{gflop / target:.1f} GFLOP/s, {gflop / target / peak:.0%} of the peak.")  # fmt: skip
    print("\n".join(lines))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")


def _rate_cells(gflop: float, seconds: float, peak: float) -> tuple[str, str, str]:
    """Seconds, GFLOP/s and share of ``peak`` as table cells."""
    return f"{seconds:.3f}", f"{gflop / seconds:.1f}", f"{gflop / seconds / peak:.0%}"


def _row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


if __name__ == "__main__":
    main()
