"""Evaluation beyond greedy accuracy: pass@k, majority voting, sampled evaluation, prediction files.

``pass_at_k`` and ``majority_vote`` are pure functions; the stages log their means over questions
as ``{split}/pass@k`` and ``{split}/voting@k`` (see :class:`SamplingEvalArgs`).
"""

from reft_lightning.evaluation.estimators import majority_vote, majority_vote_index, pass_at_k
from reft_lightning.evaluation.sampling import QuestionSamples, SamplingEvalArgs
from reft_lightning.evaluation.writer import PredictionWriter

__all__ = [
    "PredictionWriter",
    "QuestionSamples",
    "SamplingEvalArgs",
    "majority_vote",
    "majority_vote_index",
    "pass_at_k",
]
