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
from transformers import PreTrainedModel


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
    weight frozen."""
    targets = list(args.target_modules) if args.target_modules is not None else "all-linear"
    config = LoraConfig(
        r=args.r, lora_alpha=args.alpha, lora_dropout=args.dropout, target_modules=targets,
        task_type="CAUSAL_LM",
    )  # fmt: skip
    return get_peft_model(model, config, autocast_adapter_dtype=True)


def has_adapters(model: torch.nn.Module) -> bool:
    return isinstance(model, PeftModel)


def export_view(
    model: PeftModel, state: dict[str, torch.Tensor], how: Literal["merged", "adapter"]
) -> tuple[torch.nn.Module, dict[str, torch.Tensor] | None]:
    """What to ``save_pretrained`` for an adapted ``model`` whose weights are ``state`` (its own, or a
    checkpoint's): a copy with the adapters merged and its weights, or the adapted copy and
    ``None`` (peft then writes only the adapter). ``model`` itself is left unchanged."""
    exported = copy.deepcopy(model)
    exported.load_state_dict(state, strict=True)
    if how == "adapter":
        return exported, None
    merged = exported.merge_and_unload()
    return merged, merged.state_dict()


PEFT_PREFIX = "base_model.model."
"""What ``PeftModel`` puts before the base model's parameter names."""


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
        yield name.removeprefix(PEFT_PREFIX).replace(".base_layer.", "."), weight
