"""How completions are decoded (greedy for evaluation, sampled for rollouts: the spec's settings),
and by which engine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class GenerationArgs:
    """How completions are generated."""

    max_new_tokens: int = 400
    """Most tokens generated per completion (spec for RL: prompt + response <= 700)."""
    do_sample: bool = False
    """``False``: greedy decoding (evaluation). ``True``: sampling (rollouts, voting)."""
    temperature: float = 1.0
    """Sampling temperature (spec: 1.0)."""
    top_k: int = 0
    """Sample only from the k most likely tokens; 0 disables (spec: 0)."""
    top_p: float = 1.0
    """Nucleus sampling mass; 1.0 disables (spec: 1.0)."""


@dataclass(frozen=True)
class SamplingArgs(GenerationArgs):
    """Generation for RL rollouts: sampling at temperature 1.0, top-k off, top-p 1.0 (spec)."""

    do_sample: bool = True
    """Rollouts sample; set ``false`` only to debug."""


@dataclass(frozen=True)
class EngineArgs:
    """Which engine decodes for evaluation and rollouts (``model.init_args.engine``)."""

    name: Literal["hf", "static", "vllm"] = "hf"
    """``hf``: the policy's own ``generate``. ``static``: the policy in this project's own decode loop
    over a static KV cache with a compiled step (``generation/static_cache.py``; faster, same greedy
    tokens). ``vllm``: a colocated vLLM copy of the policy on the same GPU, refreshed with the
    policy's weights after each PPO iteration (``pip install 'reft_lightning[vllm]'``; untested on
    real vLLM, docs/architecture.md)."""
    compile: bool = True
    """``static``: compile the decode step (``torch.compile``: a few builds of seconds each, the
    first for the first sizes met, then one with a changed size symbolic); not with a sharded (FSDP2)
    policy."""
    prompt_bucket: int = 16
    """``static``: prompts are left-padded to a multiple of this many tokens, so that batches of
    nearby prompt lengths share shapes."""
    cache_chunk: int = 64
    """``static``: new-token slots the KV cache starts with; it doubles when full, up to
    ``max_new_tokens`` (each step attends over every slot, written or not)."""
    gpu_memory_utilization: float = 0.3
    """``vllm``: fraction of the GPU's memory vLLM takes for its weights and KV cache, in (0, 1]; the
    rest stays for training (policy, reference, optimizer states, activations)."""
    max_model_len: int | None = None
    """``vllm``: most tokens (prompt + completion) per sequence vLLM plans its KV cache for;
    ``None``: the model's own limit."""

    def __post_init__(self) -> None:
        if self.name not in ("hf", "static", "vllm"):
            raise ValueError(
                f"model.init_args.engine.name must be 'hf', 'static' or 'vllm', got {self.name!r}"
            )
        for key in ("prompt_bucket", "cache_chunk"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"model.init_args.engine.{key} must be a positive integer, got {value!r}")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError(
                "model.init_args.engine.gpu_memory_utilization must be a fraction in (0, 1], "
                f"got {self.gpu_memory_utilization!r}"
            )
        if self.max_model_len is not None and self.max_model_len < 1:
            raise ValueError(
                "model.init_args.engine.max_model_len must be a positive token count or null, "
                f"got {self.max_model_len!r}"
            )
