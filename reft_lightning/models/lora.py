"""LoRA adapters through ``peft``: the base weights frozen, low-rank updates trained (Hu et al., 2021).

With adapters the policy is ``W x + (alpha / r) B A x`` per adapted linear layer (``A``: [r, in],
``B``: [out, r], ``B`` zero at the start, so the adapted model starts as the base). ReFT's frozen
reference is then the same module with its adapters disabled: no second copy of the weights.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer
from transformers import AutoModelForCausalLM, PreTrainedModel

from reft_lightning.models.sharding import is_sharded


@dataclass(frozen=True)
class LoRAArgs:
    """LoRA of the policy (``model.init_args.lora``); ``r: 0`` trains every weight (the paper)."""

    r: int = 0
    """Rank of the adapters; 0: no adapters."""
    alpha: float = 16.0
    """Scale numerator: the update is multiplied by ``alpha / r``."""
    dropout: float = 0.05
    """Dropout on the adapters' input."""
    target_modules: tuple[str, ...] | None = None
    """Names of the linear layers to adapt (``c_attn``, ``q_proj``, ...); ``None``: every linear
    layer but the LM head (peft's ``all-linear``)."""
    export: Literal["merged", "adapter"] = "merged"
    """What ``HFExport`` writes: the base with the adapters merged in (a plain model), or only the
    adapter (``adapter_config.json`` + weights, loaded with ``peft`` over the base)."""

    def __post_init__(self) -> None:
        if self.r < 0:
            raise ValueError(f"lora.r must be >= 0 (0: no adapters), got {self.r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"lora.dropout must be in [0, 1), got {self.dropout}")

    @property
    def enabled(self) -> bool:
        return self.r > 0


def add_adapters(model: PreTrainedModel, args: LoRAArgs) -> PeftModel:
    """``model`` with trainable LoRA adapters (float32, whatever the base dtype) and every other
    weight frozen. Over a base on the meta device the adapters get memory and their initial values
    (the base's weights are loaded later, shard by shard)."""
    targets = list(args.target_modules) if args.target_modules is not None else "all-linear"
    config = LoraConfig(
        r=args.r, lora_alpha=args.alpha, lora_dropout=args.dropout, target_modules=targets,
        task_type="CAUSAL_LM",
    )  # fmt: skip
    # The adapters' initial values come from a generator seeded with the run's seed, not from the
    # global stream: the same whether the base is whole or on the meta device (sharded loading,
    # where peft builds them on meta), on every process, and the global stream is left as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(torch.initial_seed())
        adapted = get_peft_model(model, config, autocast_adapter_dtype=True)
        for layer in adapted.modules():
            if isinstance(layer, LoraLayer):
                for name in layer.lora_A:
                    for adapter in (layer.lora_A[name], layer.lora_B[name]):
                        if any(p.is_meta for p in adapter.parameters()):
                            adapter.to_empty(device="cpu")
                    layer.reset_lora_parameters(name, init_lora_weights=True)  # A random, B zero
    return adapted


def has_adapters(model: torch.nn.Module) -> bool:
    return isinstance(model, PeftModel)


def export_view(
    model: PeftModel, state: dict[str, torch.Tensor], how: Literal["merged", "adapter"]
) -> tuple[torch.nn.Module, dict[str, torch.Tensor] | None]:
    """What to ``save_pretrained`` for an adapted ``model`` whose weights are ``state`` (its own, or a
    checkpoint's): a copy with the adapters merged and its weights, or the adapted copy and
    ``None`` (peft then writes only the adapter). ``model`` itself is left unchanged."""
    exported = _unsharded_copy(model)
    exported.load_state_dict(state, strict=True)
    if how == "adapter":
        return exported, None
    return exported.get_base_model(), dict(merged_weights(exported))


def _unsharded_copy(model: PeftModel) -> PeftModel:
    """A copy of ``model`` that is not sharded (its weights are then loaded whole): for a sharded
    model the same architecture and adapters built anew in this process, else a deep copy."""
    if not is_sharded(model):
        return copy.deepcopy(model)
    base = model.get_base_model()
    plain = AutoModelForCausalLM.from_config(base.config, dtype=base.dtype)
    return get_peft_model(plain, copy.deepcopy(model.peft_config[model.active_adapter]))


PEFT_PREFIX = "base_model.model."
"""What ``PeftModel`` puts before the base model's parameter names."""


def base_parameter_name(name: str) -> str:
    """The base model's name of a parameter of its peft-wrapped model (``base_model.model.`` and
    ``.base_layer`` dropped); other names unchanged."""
    return name.removeprefix(PEFT_PREFIX).replace(".base_layer.", ".")


def merged_weights(model: PeftModel) -> Iterator[tuple[str, torch.Tensor]]:
    """``(name, weight)`` of the plain model that ``model`` computes: each adapted layer's weight with
    its active adapters' update ``(alpha / r) B A`` added, under the base model's own names (no
    ``base_model.model.`` or ``.base_layer``); the adapters' own tensors are left out. One weight at
    a time, and ``model`` is left unchanged (unlike peft's ``merge_adapter``)."""
    updates = {
        f"{name}.base_layer.weight": module
        for name, module in model.named_modules()
        if hasattr(module, "get_delta_weight") and hasattr(module, "base_layer")
    }
    for name, parameter in model.named_parameters():
        if ".lora_" in name:
            continue
        weight = parameter.detach()
        layer = updates.get(name)
        if layer is not None and not layer.merged:
            for adapter in (a for a in layer.active_adapters if a in layer.lora_A):
                weight = weight + layer.get_delta_weight(adapter).to(weight.dtype)
        yield base_parameter_name(name), weight
