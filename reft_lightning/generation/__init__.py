"""Decoding behind an engine seam: settings, the engine protocol, and the Hugging Face engine."""

from reft_lightning.generation.args import GenerationArgs, SamplingArgs
from reft_lightning.generation.engine import Completions, GenerationEngine, response_mask
from reft_lightning.generation.hf import HFGenerationEngine

__all__ = [
    "Completions",
    "GenerationArgs",
    "GenerationEngine",
    "HFGenerationEngine",
    "SamplingArgs",
    "response_mask",
]
