"""FSDP2 sharding of a Hugging Face causal LM: each transformer block, then the root.

Used under Lightning's ``ModelParallelStrategy`` (``configs/launch/fsdp2*.yaml``), which builds the
device mesh and hands it to the LightningModule; ``fully_shard`` then splits every parameter over
the mesh's data-parallel ranks, gathers a block's weights just before its forward and backward, and
reduce-scatters its gradients (averaged over the ranks, as DDP does).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import (
    CPUOffloadPolicy,
    FSDPModule,
    MixedPrecisionPolicy,
    OffloadPolicy,
    fully_shard,
)
from transformers import PreTrainedModel

from reft_lightning.models.loading import resolve_dtype


def transformer_blocks(model: PreTrainedModel) -> list[torch.nn.Module]:
    """The model's transformer blocks: the modules whose class the model names in
    ``_no_split_modules`` (``GPT2Block``, ``LlamaDecoderLayer``, ...; also once sharded, when FSDP2
    has made each an ``FSDP{name}`` subclass), in order."""
    names = set(getattr(model, "_no_split_modules", None) or [])
    blocks = [m for m in model.modules() if any(cls.__name__ in names for cls in type(m).__mro__)]
    if not blocks:
        raise ValueError(
            f"{type(model).__name__} names no transformer block class in _no_split_modules, so it "
            "cannot be sharded block by block; use strategy: ddp for it"
        )
    return blocks


def whole(tensor: torch.Tensor) -> torch.Tensor:
    """A sharded ``DTensor``'s full value as a plain tensor (a collective: every process calls it);
    any other tensor as it is."""
    return tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor


def is_sharded(module: torch.nn.Module) -> bool:
    """Whether any parameter of ``module`` is a sharded ``DTensor`` (``fully_shard`` was applied)."""
    return any(hasattr(parameter, "full_tensor") for parameter in module.parameters())


@dataclass(frozen=True)
class FSDPArgs:
    """FSDP2 mixed precision of a stage's models (``model.init_args.fsdp``); used only under
    ``ModelParallelStrategy``, where the models are sharded (docs/scaling.md)."""

    param_dtype: str | None = None
    """dtype the gathered weights compute in (``bfloat16``: mixed precision, while the sharded
    weights and so the optimizer states keep the stage's ``dtype``, e.g. ``float32`` master weights);
    ``None``: the weights' own dtype."""
    reduce_dtype: str | None = None
    """dtype of the gradient reduce-scatter (``float32`` sums bf16 gradients in full precision);
    ``None``: ``param_dtype``."""

    def __post_init__(self) -> None:
        for name in ("param_dtype", "reduce_dtype"):
            value = getattr(self, name)
            if value is not None:
                resolve_dtype(value)  # an unknown name fails at start-up, naming the choices

    def policy(self) -> MixedPrecisionPolicy:
        """FSDP2's ``MixedPrecisionPolicy`` for these dtypes."""
        return MixedPrecisionPolicy(
            param_dtype=resolve_dtype(self.param_dtype) if self.param_dtype else None,
            reduce_dtype=resolve_dtype(self.reduce_dtype) if self.reduce_dtype else None,
        )


def shard_model(
    model: torch.nn.Module,
    mesh: DeviceMesh,
    args: FSDPArgs = FSDPArgs(),
    offload: bool = False,
    frozen: bool = False,
) -> None:
    """``fully_shard`` every transformer block of ``model``, then the root (embeddings, final norm,
    head), over the 1-D ``mesh``, in place, with ``args``'s mixed precision; with ``offload`` the
    shards live in (pinned, where an accelerator exists) CPU memory and each unit is copied to the
    accelerator for its forward and backward. A ``frozen`` model (no backward) reshards its root
    (embeddings, head) after each forward too, where FSDP2 would keep it gathered for the backward.
    For a LoRA-wrapped ``model`` the root unit is the wrapped causal LM, whose forward every call
    runs through (peft's ``generate`` skips the wrapper's own forward), with the adapters sharded
    with their blocks."""
    policy = args.policy()
    placement = CPUOffloadPolicy(pin_memory=mesh.device_type != "cpu") if offload else OffloadPolicy()
    for block in transformer_blocks(model):
        fully_shard(block, mesh=mesh, mp_policy=policy, offload_policy=placement)
    reshard_root = True if frozen else None  # None: FSDP2's default, the root stays gathered after forward
    root = model.get_base_model() if hasattr(model, "get_base_model") else model
    fully_shard(
        root, mesh=mesh, mp_policy=policy, offload_policy=placement, reshard_after_forward=reshard_root
    )


def full_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``model``'s weights as whole tensors. For a sharded model every process must call this (the
    shards are gathered); the full weights land on global rank 0, on the CPU, and the other
    processes get an empty dict, so no rank but the one that exports holds a full copy. Weights the
    model ties to others (``lm_head.weight`` to the embeddings) are left out, as ``save_pretrained``
    leaves them out of an unsharded model."""
    if not is_sharded(model):
        return model.state_dict()
    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    for tied in getattr(model, "all_tied_weights_keys", None) or {}:  # gathered apart: drop the copy
        state.pop(tied, None)
    return state


@contextmanager
def gathered(model: torch.nn.Module) -> Iterator[None]:
    """Inside, a sharded ``model``'s units keep their weights gathered once gathered, instead of
    gathering every block again for every forward (one all-gather per block per token in a
    generation); on exit every unit reshards, and blocks reshard after forward again (the root
    does not, FSDP2's default). For an unsharded model this does nothing.
    """
    units = [module for module in model.modules() if isinstance(module, FSDPModule)]
    for unit in units:
        unit.set_reshard_after_forward(False, recurse=False)
    try:
        yield
    finally:
        for unit in units:
            unit.reshard()
            unit.set_reshard_after_forward(unit is not model, recurse=False)
