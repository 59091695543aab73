"""Load a causal LM already sharded: no process ever holds a whole copy of its weights.

Under a device mesh the model is built with its parameters on the meta device (no memory, no
random initialisation), sharded with FSDP2 (``models/sharding.py``), given memory for its local
shards only, and then filled one parameter at a time: each process reads a whole tensor from the
checkpoint files (memory-mapped safetensors) and keeps its own slice. A process's memory peaks at
its shards plus one whole tensor, the largest being the embedding (0.26 GB in float32 for a 7B
Llama), instead of the 27 GB of the full float32 model (docs/scaling.md).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors import safe_open
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.tensor import distribute_tensor
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel
from transformers.initialization import no_init_weights

from reft_lightning.models.loading import require_local_model, resolve_dtype
from reft_lightning.models.lora import base_parameter_name

SAFETENSORS_INDEX = "model.safetensors.index.json"
"""Index of a checkpoint split over several safetensors files (``weight_map``: name -> file)."""


@contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Inside, new modules' parameters are created on the meta device and not initialised; buffers
    are created as usual, so the ones a model computes from its config (rotary frequency tables,
    which checkpoints do not hold) keep their values."""
    register = torch.nn.Module.register_parameter

    def register_on_meta(module: torch.nn.Module, name: str, param: torch.nn.Parameter | None) -> None:
        register(module, name, param)
        if param is not None:
            module._parameters[name] = type(param)(param.to("meta"), requires_grad=param.requires_grad)

    torch.nn.Module.register_parameter = register_on_meta
    try:
        with no_init_weights():
            yield
    finally:
        torch.nn.Module.register_parameter = register


def empty_causal_lm(directory: Path, dtype: str) -> PreTrainedModel:
    """The architecture of the model in ``directory`` (its ``config.json``), parameters in
    ``dtype`` on the meta device, tied weights tied, in training mode."""
    config = AutoConfig.from_pretrained(directory)
    with parameters_on_meta():
        model = AutoModelForCausalLM.from_config(config, dtype=resolve_dtype(dtype))
    model.tie_weights()  # from_config ties inside the initialisation that was skipped
    return model.train()


class CheckpointTensors(Mapping[str, torch.Tensor]):
    """The tensors of a Hugging Face model directory by name, read one at a time on request from
    its safetensors files (one ``model.safetensors`` or several named by the index) or, failing
    those, from ``pytorch_model.bin`` (memory-mapped). Use as a context manager to close the files."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._files = ExitStack()
        index = directory / SAFETENSORS_INDEX
        if index.is_file():
            self._where = json.loads(index.read_text())["weight_map"]
        elif (directory / "model.safetensors").is_file():
            with safe_open(directory / "model.safetensors", framework="pt") as single:
                self._where = dict.fromkeys(single.keys(), "model.safetensors")
        elif (directory / "pytorch_model.bin").is_file():
            self._where = {}
            self._bin = torch.load(directory / "pytorch_model.bin", mmap=True, weights_only=True)
        else:
            raise FileNotFoundError(
                f"{directory}: no model.safetensors, {SAFETENSORS_INDEX} or pytorch_model.bin to load from"
            )
        self._open: dict[str, object] = {}

    def __getitem__(self, name: str) -> torch.Tensor:
        if not self._where:
            return self._bin[name]
        file = self._where[name]
        if file not in self._open:
            self._open[file] = self._files.enter_context(
                safe_open(self.directory / file, framework="pt", device="cpu")
            )
        return self._open[file].get_tensor(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._where or self._bin)

    def __len__(self) -> int:
        return len(self._where or self._bin)

    def __enter__(self) -> CheckpointTensors:
        return self

    def __exit__(self, *exc: object) -> None:
        self._files.close()


def fill_sharded(
    model: torch.nn.Module, weights: Mapping[str, torch.Tensor], device: torch.device, source: str
) -> None:
    """Give a sharded meta-device ``model`` memory on ``device`` for its local shards and copy each
    parameter's slice of ``weights`` into it. Buffers (on the compute device, also when the shards
    are offloaded to ``cpu``), and parameters that were not on the meta device (LoRA adapters added
    after the base was built), keep the values they were built with.

    ``weights`` names tensors as the base model's ``state_dict`` does, or with its
    ``base_model_prefix`` missing or added (older checkpoints); names of a peft-wrapped model are
    mapped back to the base's (``base_model.model.`` and ``.base_layer`` dropped). A missing or
    misshapen tensor is an error naming ``source`` (the directory or checkpoint read from).
    """
    kept = {name: _local(p).clone() for name, p in model.named_parameters() if not _local(p).is_meta}
    buffers = {name: buffer.clone() for name, buffer in model.named_buffers()}  # on the compute device
    prefix = getattr(model, "base_model_prefix", "")
    model.to_empty(device=device)
    for name, buffer in buffers.items():  # back where FSDP2 put them, even when the shards are offloaded
        owner, _, leaf = name.rpartition(".")
        model.get_submodule(owner)._buffers[leaf] = buffer
    with torch.no_grad():
        for name, tensor in model.named_parameters():  # tied weights appear once
            if name in kept:
                _local(tensor).copy_(kept[name])
                continue
            full = _lookup(weights, name, prefix, source)
            if full.shape != tensor.shape:
                shapes = f"{tuple(full.shape)}, the model {tuple(tensor.shape)}"
                raise ValueError(f"{source}: {name} has shape {shapes}")
            full = full.to(dtype=tensor.dtype)
            if hasattr(tensor, "device_mesh"):  # a DTensor: keep this process's slice, no communication
                sliced = distribute_tensor(full, tensor.device_mesh, tensor.placements, src_data_rank=None)
                tensor.to_local().copy_(sliced.to_local())
            else:
                tensor.copy_(full)


def _local(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to_local() if hasattr(tensor, "to_local") else tensor


def _lookup(weights: Mapping[str, torch.Tensor], name: str, prefix: str, source: str) -> torch.Tensor:
    name = base_parameter_name(name)  # a LoRA-wrapped base's name
    stripped = name.removeprefix(f"{prefix}.")
    candidates = dict.fromkeys((name, stripped, f"{prefix}.{name}"))
    for candidate in candidates:
        if candidate in weights:
            return weights[candidate]
    checked = ", ".join(repr(c) for c in candidates)
    raise KeyError(f"{source}: no weight {name!r} to load (looked for {checked})")


def local_model_directory(name_or_path: str, key: str) -> Path:
    """The local directory of a model named by path or hub id. A hub id is downloaded (config,
    safetensors) by each node's local rank 0 while the other processes wait, then found in the
    cache by them; ``key`` names the config field for the error a missing local path raises."""
    require_local_model(name_or_path, key)
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    from huggingface_hub import snapshot_download

    first = int(os.environ.get("LOCAL_RANK", "0")) == 0
    waits = dist.is_available() and dist.is_initialized()
    if waits and not first:
        dist.barrier()
    directory = Path(snapshot_download(name_or_path, allow_patterns=["*.json", "*.safetensors"]))
    if waits and first:
        dist.barrier()
    return directory


def mesh_device(mesh: DeviceMesh) -> torch.device:
    """The device this process computes on in ``mesh`` (its current CUDA device, or the CPU)."""
    if mesh.device_type == "cpu":
        return torch.device("cpu")
    return torch.device(mesh.device_type, torch.get_device_module(mesh.device_type).current_device())
