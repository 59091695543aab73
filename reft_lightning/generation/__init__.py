"""Decoding behind an engine seam: settings, the engine protocol, and the Hugging Face, static-cache
and vLLM engines."""

from reft_lightning.generation.args import EngineArgs, GenerationArgs, SamplingArgs
from reft_lightning.generation.build import build_engine
from reft_lightning.generation.engine import (
    Completions,
    GenerationEngine,
    completions_from_ids,
    response_mask,
)
from reft_lightning.generation.hf import HFGenerationEngine
from reft_lightning.generation.static_cache import StaticCacheEngine
from reft_lightning.generation.vllm import VLLMGenerationEngine

__all__ = [
    "Completions",
    "EngineArgs",
    "GenerationArgs",
    "GenerationEngine",
    "HFGenerationEngine",
    "SamplingArgs",
    "StaticCacheEngine",
    "VLLMGenerationEngine",
    "build_engine",
    "completions_from_ids",
    "response_mask",
]
