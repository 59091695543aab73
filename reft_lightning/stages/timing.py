"""Wall seconds of the named steps of a training iteration: one helper for every stage."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from lightning.pytorch.profilers import Profiler


class StepTimer:
    """Times the steps of one iteration: ``with timer("rollout"): ...``.

    Each step's wall seconds land in :attr:`seconds` (logged as ``time/{step}``), and the step is
    also a section ``{prefix}/{step}`` of the Trainer's profiler, so ``--trainer.profiler simple``
    reports it with Lightning's own. On a CUDA device the clock stops only after the device has
    finished the step's work (``torch.cuda.synchronize``): each step is charged for its own
    kernels, not for those queued before it.

    Args:
        profiler: the Trainer's profiler (``trainer.profiler``; a pass-through one unless configured).
        device: where the step's work runs.
        prefix: the profiler sections' prefix (the stage).
    """

    def __init__(self, profiler: Profiler, device: torch.device, prefix: str) -> None:
        self.profiler, self.device, self.prefix = profiler, device, prefix
        self.seconds: dict[str, float] = {}
        """Seconds per step timed so far."""
        self._created = time.perf_counter()

    @contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        self._synchronize()
        started = time.perf_counter()
        with self.profiler.profile(f"{self.prefix}/{step}"):
            yield
            self._synchronize()
        self.seconds[step] = time.perf_counter() - started

    def elapsed(self) -> float:
        """Seconds since the timer was made (the whole iteration so far)."""
        self._synchronize()
        return time.perf_counter() - self._created

    def _synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
