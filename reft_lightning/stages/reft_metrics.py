"""What a ReFT iteration logs: rewards, KL, entropy, lengths and throughput of its rollouts."""

from __future__ import annotations

import torch

from reft_lightning.rewards.base import RewardOutput


def rollout_metrics(
    scored: RewardOutput,
    scores: torch.Tensor,
    mask: torch.Tensor,
    sequence_kl: torch.Tensor,
    entropy: torch.Tensor,
    rewards: torch.Tensor,
    seconds: float,
) -> dict[str, float]:
    """``train/*`` metrics of one process's rollout of ``N`` sequences, each a mean over them.

    Args:
        scored: the reward's output (``correct``, ``answers``, its own ``metrics``).
        scores: ``[N]`` terminal scores. mask: ``[N, R]`` response tokens. sequence_kl: ``[N]`` KL
            summed over each response. entropy: mean entropy per token. rewards: ``[N, R]`` shaped
            per-token rewards. seconds: the iteration's wall time (for tokens per second).
    """
    n = scores.shape[0]
    response_tokens = float(mask.sum())
    return {
        "train/score": float(scores.mean()),
        "train/accuracy": sum(scored.correct) / n,
        "train/extracted": sum(a is not None for a in scored.answers) / n,
        "train/kl": float(sequence_kl.mean()),
        "train/entropy": float(entropy),
        "train/response_length": response_tokens / n,
        "train/shaped_reward": float((rewards * mask).sum(dim=1).mean()),
        "train/response_tokens_per_s": response_tokens / max(seconds, 1e-9),
        **{f"train/reward_{name}": float(value) for name, value in scored.metrics.items()},
    }
