"""No non-finite tensor is saved: the check run before every checkpoint and every export."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch


class NonFiniteStateError(RuntimeError):
    """A tensor about to be saved holds ``nan`` or ``inf``."""


def named_tensors(state: Any, prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """Every floating-point tensor in nested dicts, lists and tuples, named by its path (``a.b.0``).

    A sharded tensor (``DTensor``) is represented by this process's shard.
    """
    if isinstance(state, torch.Tensor):
        local = state.to_local() if hasattr(state, "to_local") else state
        if local.is_floating_point() or local.is_complex():
            yield prefix, local
    elif isinstance(state, Mapping):
        for key, value in state.items():
            yield from named_tensors(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(state, (list, tuple)):
        for index, value in enumerate(state):
            yield from named_tensors(value, f"{prefix}.{index}" if prefix else str(index))


def first_nonfinite(state: Any) -> str | None:
    """The name of the first tensor in ``state`` (see :func:`named_tensors`) with a ``nan`` or
    ``inf`` element, or ``None`` when all are finite. One host transfer for the whole state."""
    named = [(name, tensor) for name, tensor in named_tensors(state) if tensor.numel() > 0]
    if not named:
        return None
    flags = [torch.isfinite(tensor).all().reshape(1).to(named[0][1].device) for _, tensor in named]
    finite = torch.cat(flags).tolist()
    return next((name for (name, _), ok in zip(named, finite) if not ok), None)


def require_finite(state: Any, what: str) -> None:
    """Raise :class:`NonFiniteStateError` naming the tensor and ``what`` (the file or checkpoint
    about to be written) when ``state`` holds a non-finite value."""
    name = first_nonfinite(state)
    if name is not None:
        raise NonFiniteStateError(nonfinite_message(name, what))


def nonfinite_message(name: str, what: str) -> str:
    """What :class:`NonFiniteStateError` says: the tensor, what was not written, and what to do."""
    return (
        f"not writing {what}: tensor {name!r} holds nan or inf. Optimizer steps with a non-finite "
        "gradient are skipped, so either an update overflowed (a very large model.init_args.optimizer.lr, "
        "or a low-precision model.init_args.dtype / trainer.precision) or the value was loaded with "
        "the weights (model.init_args.model, init_checkpoint, --ckpt_path). Resume from an earlier "
        "checkpoint with a lower lr or in float32 / bfloat16"
    )
