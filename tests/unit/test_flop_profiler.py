"""The bench's FLOP-counting profiler: FLOPs per ReFT step section and iteration, against hand counts."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from bench.flop_profiler import FlopProfiler


def _iterations(log_dir: Path) -> list[dict[str, dict[str, int]]]:
    return [json.loads(line) for line in (log_dir / "step_flops.jsonl").read_text().splitlines()]


def test_counts_each_step_of_each_iteration_and_nothing_outside_them(tmp_path: Path) -> None:
    profiler = FlopProfiler()
    profiler.setup("fit", local_rank=0, log_dir=str(tmp_path / "logs"))
    a, b = torch.randn(8, 16, requires_grad=True), torch.randn(16, 4)
    linear = torch.nn.Linear(16, 4)
    for _ in range(2):
        with profiler.profile("reft/rollout"):
            torch.mm(a.detach(), b)  # 2 * 8 * 16 * 4 = 1024
        with profiler.profile("[Strategy]SingleDeviceStrategy.training_step"):
            torch.mm(a.detach(), b)  # not a ReFT step: not counted
        with profiler.profile("reft/optimise"):
            linear(a).sum().backward()  # addmm 1024 forward; mm 1024 (input grad) + 1024 (weight grad)
    profiler.teardown("fit")
    iterations = _iterations(tmp_path / "logs")
    assert len(iterations) == 2
    for iteration in iterations:
        assert iteration["rollout"] == {"aten.mm": 1024}
        assert iteration["optimise"] == {"aten.addmm": 1024, "aten.mm": 2048}


def test_cpu_flash_attention_counts_its_matrix_multiplies(tmp_path: Path) -> None:
    """Masked float32 SDPA on [B, H, L, D] runs the CPU flash kernel, which torch's counter alone
    counts as 0: forward QK^T and PV, 2 * 2BHL^2D; backward the recomputed QK^T and four gradient
    matmuls, 5 * 2BHL^2D (torch's SDPA formulas)."""
    rows, heads, length, head_dim = 3, 2, 10, 8
    q, k, v = (torch.randn(rows, heads, length, head_dim, requires_grad=True) for _ in range(3))
    mask = torch.ones(length, length, dtype=torch.bool).tril().expand(rows, 1, length, length).clone()
    mask[0, :, :, :2] = False  # left padding of the first row
    mask[0, :, :2, :2] = torch.eye(2, dtype=torch.bool)
    profiler = FlopProfiler()
    profiler.setup("fit", local_rank=0, log_dir=str(tmp_path))
    with profiler.profile("reft/evaluate"):
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    with profiler.profile("reft/optimise"):
        out.sum().backward()
    profiler.teardown("fit")
    (iteration,) = _iterations(tmp_path)
    one_matmul = 2 * rows * heads * length * length * head_dim
    assert iteration["evaluate"] == {"aten._scaled_dot_product_flash_attention_for_cpu": 2 * one_matmul}
    assert iteration["optimise"] == {
        "aten._scaled_dot_product_flash_attention_for_cpu_backward": 5 * one_matmul
    }
