"""The Reward contract: completions in, one terminal score per completion out.

A reward is any callable object with the signature of :meth:`Reward.__call__`. It is configured
in YAML by ``class_path`` and must never raise on model output: unparsable, hostile or empty
completions get a score like any other.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from reft_lightning.data.example import MathExample

Answer = float | str | None
"""What a reward extracted from one completion: a number, a letter/string, or ``None``."""


@dataclass
class RewardOutput:
    """Per-completion results of a reward; every list has one entry per completion, in order."""

    scores: list[float]
    """Terminal score per completion (ReFT default: 1.0 correct, 0.1 wrong answer, 0.0 none)."""
    answers: list[Answer]
    """The extracted answer, or ``None`` where nothing could be extracted."""
    correct: list[bool]
    """Whether the extracted answer matches the gold answer."""
    metrics: dict[str, float] = field(default_factory=dict)
    """Optional named scalars to log (e.g. ``timeout_fraction``)."""

    def __post_init__(self) -> None:
        if not len(self.scores) == len(self.answers) == len(self.correct):
            raise ValueError(
                f"RewardOutput lists differ in length: scores={len(self.scores)}, "
                f"answers={len(self.answers)}, correct={len(self.correct)}"
            )


class Reward(ABC):
    """Base class of all rewards.

    Subclasses implement :meth:`__call__`; those holding resources (a sandbox pool) override
    :meth:`close`, which the trainer calls when it is done with the reward. A reward written for one
    chain-of-thought format sets :attr:`cot_formats`, and the stages refuse it on data of another.
    """

    cot_formats: ClassVar[frozenset[str] | None] = None
    """The CoT formats (``data.init_args.cot_format``: ``"ncot"``, ``"pcot"``) whose completions this
    reward scores; ``None`` (the default, so a custom reward is never refused): any format."""

    scores_in_background: ClassVar[bool] = False
    """Whether the trainer may run this reward in a background thread while it computes the next
    step (ReFT: the rollouts' log-probs and values). ``True`` only for rewards that touch no model
    or device (the sandbox's programs run in their own processes); ``False`` (the default, safe for
    a custom reward): scored in the trainer's thread before the next step."""

    def scores_format(self, cot_format: str) -> bool:
        """Whether this reward scores completions written in ``cot_format`` (by :attr:`cot_formats`)."""
        return self.cot_formats is None or cot_format in self.cot_formats

    @abstractmethod
    def __call__(self, completions: Sequence[str], examples: Sequence[MathExample]) -> RewardOutput:
        """Score ``completions[i]`` against ``examples[i]``; ``len(completions) == len(examples)``."""

    def close(self) -> None:
        """Release held resources. Safe to call more than once."""


@dataclass(frozen=True)
class OutcomeScores:
    """The three-level terminal score of the paper: correct, answered but wrong, no answer."""

    correct: float = 1.0
    """Score of a completion whose answer matches the gold answer."""
    partial: float = 0.1
    """Score of a completion with an extracted but wrong answer (the paper's partial reward)."""
    wrong: float = 0.0
    """Score of a completion from which no answer could be extracted."""

    def score(self, answer: Answer, is_correct: bool) -> float:
        """Score one completion from its extracted answer and correctness."""
        if is_correct:
            return self.correct
        return self.wrong if answer is None else self.partial


def reward_name(reward: Reward) -> str:
    """The class name of ``reward`` as configured (the class a ``lazy_instance`` default stands for)."""
    lazy = getattr(reward, "_lazy_class_type", None)  # jsonargparse's lazy_instance records it
    return (lazy if isinstance(lazy, type) else type(reward)).__qualname__


FORMAT_REWARDS = {
    "ncot": "AnswerReward (ChoiceReward for multiple choice)",
    "pcot": "ProgramReward (ChoiceReward with program: ProgramReward for multiple choice)",
}
"""The built-in rewards to suggest for each CoT format."""


def check_reward_format(reward: Reward, cot_format: str, data_key: str = "data.init_args.cot_format") -> None:
    """Raise ``ValueError`` naming ``model.init_args.reward`` and ``data_key`` when ``reward`` does not
    score ``cot_format`` completions (an N-CoT reward would score every P-CoT program 0, silently)."""
    if reward.scores_format(cot_format):
        return
    name = reward_name(reward)
    raise ValueError(
        f"model.init_args.reward is {name}, which does not score {cot_format!r} completions, but "
        f"{data_key} is {cot_format!r}: every completion would score as wrong. Use "
        f"{FORMAT_REWARDS.get(cot_format, 'a reward for that format')} as model.init_args.reward, "
        f"or set {data_key} to the format the reward scores"
    )


def check_lengths(completions: Sequence[str], examples: Sequence[MathExample]) -> None:
    """Raise ``ValueError`` when completions and examples are not paired one to one."""
    if len(completions) != len(examples):
        raise ValueError(f"{len(completions)} completions for {len(examples)} examples")


def score_completions(
    reward: Reward, completions: Sequence[str], examples: Sequence[MathExample]
) -> RewardOutput:
    """``reward(completions, examples)``, checked at the boundary before any score is trained on.

    Raises ``ValueError`` naming the reward class when it returns a different number of results
    than completions, or a score that is not a finite number (nan or inf would reach the advantages,
    the loss and the weights); the message shows the first offending sample.
    """
    output = reward(completions, examples)
    name = reward_name(reward)
    if len(output.scores) != len(completions):
        raise ValueError(
            f"reward {name} returned {len(output.scores)} scores for {len(completions)} completions"
        )
    for index, score in enumerate(output.scores):
        if not math.isfinite(score):
            excerpt = completions[index][:200]
            raise ValueError(
                f"reward {name} returned a non-finite score {score!r} for sample {index} "
                f"(example {examples[index].id!r}, completion {excerpt!r}); scores must be finite numbers"
            )
    return output
