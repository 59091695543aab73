"""A Lightning profiler for benchmarks: the matrix-multiply FLOPs of each step of each ReFT iteration.

Named in a config as ``flop_profiler.FlopProfiler`` with ``bench/`` on ``PYTHONPATH``
(``bench/step_flops.py`` does this). ``ReFTModule.training_step`` times its steps as profiler
sections ``reft/rollout``, ``reft/evaluate``, ... (``stages/timing.py``); this profiler runs each of
them under torch's ``FlopCounterMode`` and appends one JSON line per iteration to
``step_flops.jsonl`` in the run's log directory (``trainer.log_dir``):
``{"rollout": {"aten.addmm": flops, ...}, ...}``.

What is counted is what ``FlopCounterMode`` counts: matrix multiplies (``mm``, ``addmm``, ``bmm``,
convolutions) and attention, forward and backward, as 2 FLOPs per multiply-add; elementwise work
(layer norms, activations, softmax outside attention, the optimizer) counts nothing. torch has no
formula for the CPU flash-attention kernels, so they get its SDPA formulas here (forward: 2 matmuls,
``QK^T`` and ``PV``; backward: 5, the recomputation of ``QK^T`` and four for the gradients).
Counting dispatches every op through Python, so a counted run is slower: take its FLOPs, not its
seconds; and count an eager run (``compile_blocks`` and ``engine.compile`` off), whose FLOPs are
those of a compiled one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.profilers import Profiler
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

SECTION_PREFIX = "reft/"
"""The sections of ``ReFTModule``'s ``StepTimer``; Lightning's own sections are not counted."""
FIRST_STEP = "rollout"
"""The step that starts an iteration."""


def _flash_forward_flops(
    query: Any, key: Any, value: Any, *args: Any, out_shape: Any = None, **kwargs: Any
) -> int:
    return sdpa_flop_count(query, key, value)


def _flash_backward_flops(
    grad_out: Any, query: Any, key: Any, value: Any, *args: Any, out_shape: Any = None, **kwargs: Any
) -> int:
    return sdpa_backward_flop_count(grad_out, query, key, value)


CPU_ATTENTION_FLOPS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _flash_forward_flops,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _flash_backward_flops,
}
"""Formulas (on argument shapes) for the CPU attention kernels torch's counter does not know."""


class FlopProfiler(Profiler):
    """Counts the FLOPs of each ``reft/*`` section by op; one JSON line per iteration (module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._counter: FlopCounterMode | None = None
        self._iteration: dict[str, dict[str, int]] = {}
        self._out: Path | None = None

    def setup(self, stage: str, local_rank: int | None = None, log_dir: str | None = None) -> None:
        super().setup(stage, local_rank, log_dir)
        if log_dir is not None:
            self._out = Path(log_dir) / "step_flops.jsonl"
            self._out.parent.mkdir(parents=True, exist_ok=True)
            self._out.write_text("")

    def start(self, action_name: str) -> None:
        if not action_name.startswith(SECTION_PREFIX):
            return
        if action_name == SECTION_PREFIX + FIRST_STEP:
            self._flush()
        self._counter = FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION_FLOPS)
        self._counter.__enter__()

    def stop(self, action_name: str) -> None:
        if not action_name.startswith(SECTION_PREFIX) or self._counter is None:
            return
        self._counter.__exit__(None, None, None)
        counts = self._counter.get_flop_counts().get("Global", {})
        step = action_name.removeprefix(SECTION_PREFIX)
        self._iteration[step] = {str(op): int(flops) for op, flops in counts.items()}
        self._counter = None

    def summary(self) -> str:
        return ""

    def teardown(self, stage: str | None) -> None:
        self._flush()
        super().teardown(stage)

    def _flush(self) -> None:
        """Append the iteration counted so far (if any) to the output file."""
        if self._iteration and self._out is not None:
            with self._out.open("a") as handle:
                handle.write(json.dumps(self._iteration) + "\n")
        self._iteration = {}
