"""How completions are decoded: greedy for evaluation, sampled for rollouts (the spec's settings)."""

from __future__ import annotations

from dataclasses import dataclass


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
