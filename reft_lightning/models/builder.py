"""How a stage builds each of its causal LMs: whole, or sharded from the start under a device mesh."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch.distributed.device_mesh import DeviceMesh
from transformers import PreTrainedModel

from reft_lightning.models.loading import load_causal_lm
from reft_lightning.models.sharded_loading import (
    CheckpointTensors,
    empty_causal_lm,
    fill_sharded,
    local_model_directory,
    mesh_device,
)
from reft_lightning.models.sharding import FSDPArgs, shard_model, transformer_blocks


def _unchanged(model: PreTrainedModel) -> PreTrainedModel:
    return model


def _freeze(model: PreTrainedModel) -> PreTrainedModel:
    return model.eval().requires_grad_(False)


RECOMPILE_LIMIT = 64
"""Recompilations torch allows per compiled function where this project compiles (its default, 8, is
spent by the blocks of one model in its train and eval modes, or by a decode step's few batch and
cache shapes, after which torch falls back to eager without an error)."""


def allow_recompiles() -> None:
    """Raise torch's recompile limit, a process-wide setting, to at least :data:`RECOMPILE_LIMIT`."""
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)


def compile_blocks(model: torch.nn.Module) -> None:
    """Compile each transformer block of ``model`` in place (``nn.Module.compile``, inductor, shapes
    dynamic from the start, since every batch has its own prompt and response lengths), after
    :func:`allow_recompiles`."""
    allow_recompiles()
    for block in transformer_blocks(model):
        block.compile(dynamic=True)


class ModelBuilder:
    """Builds a stage's models. Without a mesh (one process, DDP) each is loaded whole by
    ``from_pretrained``; with a 1-D data-parallel ``mesh`` (``ModelParallelStrategy``) each is built
    on the meta device, sharded with FSDP2 block by block with ``fsdp``'s mixed precision, and
    filled shard by shard (``models/sharded_loading.py``), so no process holds a whole copy.

    Args:
        mesh: the data-parallel mesh to shard over, or ``None``.
        fsdp: FSDP2 mixed precision of every model sharded.
        compile_blocks: compile each transformer block of every model in place
            (``nn.Module.compile``: inductor; the models keep their classes and state-dict keys);
            not with a mesh.
    """

    def __init__(
        self, mesh: DeviceMesh | None = None, fsdp: FSDPArgs = FSDPArgs(), compile_blocks: bool = False
    ) -> None:
        if compile_blocks and mesh is not None:
            raise ValueError(
                "model.init_args.compile_blocks: true is not supported with sharded models "
                "(ModelParallelStrategy, FSDP2); drop the key or train without a mesh"
            )
        self.mesh = mesh
        self.fsdp = fsdp
        self.compile_blocks = compile_blocks

    def causal_lm(
        self,
        name_or_path: str,
        dtype: str,
        *,
        key: str,
        weights: Mapping[str, torch.Tensor] | None = None,
        prepare: Callable[[PreTrainedModel], torch.nn.Module] = _unchanged,
        offload: bool = False,
        frozen: bool = False,
    ) -> PreTrainedModel:
        """The model ``name_or_path`` in ``dtype``, in training mode (``frozen``: in eval mode, no
        weight requiring a gradient, and sharded to reshard fully after every forward).

        Args:
            name_or_path: hub id or local directory (architecture, and weights unless ``weights``).
            dtype: weight dtype (``float32``, ``bfloat16``, ``float16``).
            key: the config field the name came from, for errors.
            weights: tensors that replace the directory's weights (an ``init_checkpoint``'s, named as
                the model's ``state_dict``); every parameter must be there.
            prepare: applied before sharding, returns the model to use (freezing parameters,
                gradient checkpointing, wrapping in LoRA adapters: parameters it creates, which
                the checkpoint does not hold, keep the values it gave them).
            offload: keep the shards in CPU memory (FSDP2 ``CPUOffloadPolicy``); only with a mesh.
        """
        if self.mesh is None:
            model = load_causal_lm(name_or_path, dtype, key=key).train()
            if weights is not None:
                model.load_state_dict(weights, strict=True)
            model = prepare(model)
            if self.compile_blocks:
                compile_blocks(model)
            return _freeze(model) if frozen else model
        directory = local_model_directory(name_or_path, key)
        model = prepare(empty_causal_lm(directory, dtype))
        if frozen:
            _freeze(model)
        shard_model(model, self.mesh, self.fsdp, offload=offload, frozen=frozen)
        device = torch.device("cpu") if offload else mesh_device(self.mesh)
        if weights is not None:
            fill_sharded(model, weights, device, source=f"the init_checkpoint weights for {key}")
        else:
            with CheckpointTensors(directory) as tensors:
                fill_sharded(model, tensors, device, source=str(directory))
        return model
