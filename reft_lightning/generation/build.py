"""The engine a stage decodes with, from ``model.init_args.engine`` (:class:`EngineArgs`)."""

from __future__ import annotations

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from reft_lightning.generation.args import EngineArgs
from reft_lightning.generation.engine import GenerationEngine
from reft_lightning.generation.hf import HFGenerationEngine
from reft_lightning.generation.static_cache import StaticCacheEngine
from reft_lightning.generation.vllm import VLLMGenerationEngine


def build_engine(
    args: EngineArgs,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    model_name: str,
    dtype: str,
    tokenizer_name: str | None = None,
) -> GenerationEngine:
    """``hf``: :class:`HFGenerationEngine` on ``model`` itself; ``static``: :class:`StaticCacheEngine`
    on ``model`` itself. ``vllm``: a colocated
    :class:`VLLMGenerationEngine` loaded from ``model_name`` (and
    ``tokenizer_name``) in ``dtype``; it needs ``update_weights(model)`` before it generates with
    weights other than ``model_name``'s."""
    if args.name == "hf":
        return HFGenerationEngine(model, tokenizer)
    if args.name == "static":
        return StaticCacheEngine(model, tokenizer, args.compile, args.prompt_bucket, args.cache_chunk)
    return VLLMGenerationEngine(
        model_name,
        tokenizer,
        tokenizer_name=tokenizer_name,
        dtype=dtype,
        gpu_memory_utilization=args.gpu_memory_utilization,
        max_model_len=args.max_model_len,
    )
