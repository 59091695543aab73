"""Sampling-based accuracy estimators: unbiased pass@k, majority voting over extracted answers, and
reward-model reranking.

Pure Python (no tensors, no model): the per-question quantities that
:mod:`reft_lightning.evaluation.metrics` averages over questions and processes.
"""

from __future__ import annotations

from collections.abc import Sequence

from reft_lightning.data.answers import NUMERIC_TOLERANCE
from reft_lightning.rewards.base import Answer


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of pass@k from ``n`` samples of which ``c`` are correct (Chen et al. 2021).

    ``pass@k = 1 - C(n - c, k) / C(n, k)``: the probability that at least one of ``k`` samples drawn
    without replacement from the ``n`` is correct. Computed as ``1 - prod_{i=n-c+1}^{n} (1 - k / i)``,
    which needs no large binomials. Requires ``1 <= k <= n`` and ``0 <= c <= n``.
    """
    if not 1 <= k <= n:
        raise ValueError(f"pass@k needs 1 <= k <= n, got k={k}, n={n}")
    if not 0 <= c <= n:
        raise ValueError(f"the number of correct samples must be in [0, n={n}], got c={c}")
    if n - c < k:
        return 1.0
    miss = 1.0
    for i in range(n - c + 1, n + 1):
        miss *= 1.0 - k / i
    return 1.0 - miss


def _same(a: float | str, b: float | str, tolerance: float) -> bool:
    """Two extracted answers agree: numbers within ``tolerance``, anything else by equality."""
    a_number, b_number = isinstance(a, float | int), isinstance(b, float | int)
    if a_number and b_number:
        return abs(float(a) - float(b)) <= tolerance
    return not a_number and not b_number and a == b


def majority_vote_index(answers: Sequence[Answer], tolerance: float = NUMERIC_TOLERANCE) -> int | None:
    """Index of the sample whose answer wins the majority vote (see :func:`majority_vote`), or ``None``."""
    groups: list[tuple[int, int]] = []  # (index of the first member, votes), in order of first appearance
    for index, answer in enumerate(answers):
        if answer is None:
            continue
        for position, (first, votes) in enumerate(groups):
            if _same(answer, answers[first], tolerance):
                groups[position] = (first, votes + 1)
                break
        else:
            groups.append((index, 1))
    if not groups:
        return None
    most = max(votes for _, votes in groups)
    return next(first for first, votes in groups if votes == most)


def majority_vote(answers: Sequence[Answer], tolerance: float = NUMERIC_TOLERANCE) -> Answer:
    """The most frequent extracted answer of one question's samples, or ``None`` if none was extracted.

    Grouping: answers are visited in sample order; each joins the first existing group whose first
    member it matches (numbers within ``tolerance``, strings exactly; a number never matches a
    string), else it starts a new group. ``None`` (unparsable) never votes.

    Ties: among the groups with the most votes, the one whose first member came earliest wins, and
    that first member is returned. So the result depends only on the order of the samples.
    """
    winner = majority_vote_index(answers, tolerance)
    return None if winner is None else answers[winner]


def rerank_index(scores: Sequence[float], k: int | None = None) -> int:
    """Index of the sample a reward model picks among the first ``k`` (``None``: all) of one question's
    samples: the highest score (P(correct)); ties go to the earliest sample. Requires a sample."""
    considered = list(scores if k is None else scores[:k])
    if not considered:
        raise ValueError("reranking needs at least one sample")
    return considered.index(max(considered))
