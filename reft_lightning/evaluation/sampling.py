"""Evaluation by sampling: ``n`` completions per question, scored, summarised per question.

Sampling runs under its own seeded random stream (forked from the global one), so turning it on
neither perturbs training's random draws nor depends on how many batches came before.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from reft_lightning.data.answers import NUMERIC_TOLERANCE
from reft_lightning.data.example import MathExample
from reft_lightning.evaluation.estimators import majority_vote_index, pass_at_k
from reft_lightning.generation import GenerationArgs, GenerationEngine
from reft_lightning.rewards.base import Answer, Reward, score_completions


@dataclass(frozen=True)
class SamplingEvalArgs:
    """Sampled evaluation besides greedy: pass@k and voting@k (``num_samples: 0`` turns it off)."""

    num_samples: int = 0
    """Samples per question, ``n``; 0 disables sampled evaluation (greedy only)."""
    temperature: float = 1.0
    """Sampling temperature (spec, rollouts: 1.0)."""
    top_k: int = 0
    """Sample only from the k most likely tokens; 0 disables."""
    top_p: float = 1.0
    """Nucleus sampling mass; 1.0 disables."""
    pass_k: tuple[int, ...] = (1,)
    """The ``k`` of each logged ``pass@k`` (unbiased estimate from all ``n`` samples); each <= n."""
    vote_k: tuple[int, ...] = ()
    """The ``k`` of each logged ``voting@k`` (majority over the first ``k`` samples); each <= n."""
    vote_tolerance: float = NUMERIC_TOLERANCE
    """Numeric answers closer than this vote together (spec comparison tolerance: 1e-2)."""
    max_sequences: int = 256
    """Most sequences (prompts x samples) generated at once; bounds the KV cache."""
    seed: int = 0
    """Seed of the sampling stream; batch ``b`` of process ``r`` uses a stream derived from it."""

    def __post_init__(self) -> None:
        if self.num_samples < 0 or self.max_sequences < 1:
            raise ValueError("num_samples must be >= 0 and max_sequences >= 1")
        bad = [k for k in (*self.pass_k, *self.vote_k) if not 1 <= k <= max(self.num_samples, 1)]
        if self.num_samples and bad:
            raise ValueError(f"pass_k / vote_k values {bad} must be in [1, num_samples={self.num_samples}]")

    @property
    def estimate_names(self) -> list[str]:
        """Names of the logged estimates, e.g. ``["pass@1", "pass@8", "voting@8"]``; empty if disabled."""
        if not self.enabled:
            return []
        return [f"pass@{k}" for k in self.pass_k] + [f"voting@{k}" for k in self.vote_k]

    @property
    def enabled(self) -> bool:
        """Whether any sampling happens."""
        return self.num_samples > 0

    def generation(self, max_new_tokens: int) -> GenerationArgs:
        """The decoding settings of the samples."""
        return GenerationArgs(
            max_new_tokens=max_new_tokens,
            do_sample=True,
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
        )


@dataclass
class QuestionSamples:
    """The ``n`` scored samples of one question, in sampling order."""

    texts: list[str]
    answers: list[Answer]
    scores: list[float]
    correct: list[bool]
    estimates: dict[str, float] = field(default_factory=dict)
    """``pass@k`` and ``voting@k`` of this question (0/1 for voting), by metric name."""


def summarise(samples: QuestionSamples, args: SamplingEvalArgs) -> QuestionSamples:
    """Fill ``samples.estimates`` with the question's pass@k and voting@k (see :class:`SamplingEvalArgs`)."""
    n, c = len(samples.correct), sum(samples.correct)
    for k in args.pass_k:
        samples.estimates[f"pass@{k}"] = pass_at_k(n, c, k)
    for k in args.vote_k:
        winner = majority_vote_index(samples.answers[:k], args.vote_tolerance)
        samples.estimates[f"voting@{k}"] = float(winner is not None and samples.correct[winner])
    return samples


def sample_and_score(
    engine: GenerationEngine,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    examples: list[MathExample],
    reward: Reward,
    args: SamplingEvalArgs,
    max_new_tokens: int,
    stream: int,
) -> list[QuestionSamples]:
    """Sample ``args.num_samples`` completions for each left-padded prompt ``[B, P]`` and score them.

    Args:
        stream: index of this batch's random stream (e.g. ``batch_idx * world_size + rank``); the
            samples are a function of ``(args.seed, stream)`` and the engine's model only.

    Returns:
        One :class:`QuestionSamples` (with estimates) per prompt, in batch order.
    """
    n = args.num_samples
    ids, mask = prompt_ids.repeat_interleave(n, 0), prompt_mask.repeat_interleave(n, 0)
    rows = max(args.max_sequences // n, 1) * n  # whole questions per generate call
    generation = args.generation(max_new_tokens)
    texts: list[str] = []
    devices = [ids.device] if ids.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(args.seed * 1_000_003 + stream)
        for start in range(0, ids.shape[0], rows):
            chunk = slice(start, start + rows)
            texts += engine.generate(ids[chunk], mask[chunk], generation).texts
    scored = score_completions(reward, texts, [e for e in examples for _ in range(n)])
    return [
        summarise(
            QuestionSamples(
                texts=texts[i * n : (i + 1) * n],
                answers=scored.answers[i * n : (i + 1) * n],
                scores=scored.scores[i * n : (i + 1) * n],
                correct=scored.correct[i * n : (i + 1) * n],
            ),
            args,
        )
        for i in range(len(examples))
    ]
