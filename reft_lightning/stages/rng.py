"""Random-number-generator state for checkpoints, so that a resumed run draws what the original would.

Every process has its own streams: process ``r > 0`` reseeds with ``seed + r`` when fitting starts
(:func:`seed_process_streams`), and a checkpoint holds the states of every process
(:func:`gather_rng_states`), each restored on its own rank (:func:`rank_rng_states`).
"""

from __future__ import annotations

import random
import warnings
from typing import Any

import numpy as np
import torch


def capture_rng_states() -> dict[str, Any]:
    """Python, NumPy, torch CPU and (when present) CUDA generator states of this process.

    Only tensors and Python primitives, so checkpoints load with ``weights_only=True``.
    """
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached_gaussian),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    """Restore states captured by :func:`capture_rng_states` (CUDA only where it was captured)."""
    random.setstate(states["python"])
    kind, keys, position, has_gauss, cached_gaussian = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached_gaussian))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def seed_process_streams(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every CUDA device) with ``seed`` in this process."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def gather_rng_states(world_size: int) -> list[dict[str, Any]]:
    """The RNG states of every process, by global rank; a collective when ``world_size > 1``."""
    states = capture_rng_states()
    if world_size == 1:
        return [states]
    gathered: list[Any] = [None] * world_size
    torch.distributed.all_gather_object(gathered, states)
    return gathered


def rank_rng_states(saved: list[dict[str, Any]] | dict[str, Any], rank: int) -> dict[str, Any]:
    """This rank's states from a checkpoint's ``rng_states``: a list by rank, or one dict (older checkpoints).

    A checkpoint saved with fewer processes than now gives rank ``r`` the states of ``r mod n``,
    with a warning: those ranks then share streams.
    """
    if isinstance(saved, dict):
        return saved
    if rank >= len(saved):
        warnings.warn(
            f"checkpoint holds RNG states of {len(saved)} processes; rank {rank} resumes with those of "
            f"rank {rank % len(saved)}",
            RuntimeWarning,
            stacklevel=2,
        )
    return saved[rank % len(saved)]
