"""The registry of advantage estimators: each is one function registered under a name, with what it needs.

``advantage: <name>`` in a ReFT config picks one. An estimator declares whether it needs a critic
(the stage then builds a value head, or a separate value model, and trains it with the value loss;
without one it builds neither, so every trainable parameter receives a gradient, as DDP requires)
and whether it needs a group of samples per question (``num_samples >= 2``). Adding an estimator is
one decorated function::

    @register_advantage("reinforce", needs_critic=False, needs_groups=False)
    def reinforce(batch: AdvantageInputs) -> tuple[Tensor, None]:
        return broadcast_to_tokens(sequence_rewards(batch), batch.mask), None

Shapes: ``B`` sequences (questions x samples, the samples of a question consecutive), ``T``
response positions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from reft_lightning.rl.advantages import GroupMethod, broadcast_to_tokens, group_advantages
from reft_lightning.rl.gae import compute_gae


@dataclass(frozen=True)
class AdvantageInputs:
    """What an estimator may read of one rollout batch."""

    rewards: Tensor
    """[B, T] shaped per-token rewards: ``-beta * KL`` on every token plus the score on the last."""
    values: Tensor | None
    """[B, T] old values ``V(s_t)``; ``None`` for an estimator without a critic."""
    mask: Tensor
    """[B, T] response mask."""
    scores: Tensor
    """[B] terminal scores (the reward function's)."""
    kl: Tensor
    """[B, T] per-token KL estimate against the reference."""
    kl_coef: float
    """Beta of the KL penalty."""
    group_size: int
    """Samples per question (``num_samples``)."""
    gamma: float
    """TD discount."""
    lam: float
    """GAE lambda."""


@dataclass(frozen=True)
class AdvantageEstimator:
    """A registered estimator: ``estimate`` returns ``(advantages, returns)``, ``[B, T]`` advantages
    (before whitening) and ``[B, T]`` value targets, or ``None`` targets without a critic."""

    name: str
    needs_critic: bool
    needs_groups: bool
    estimate: Estimate


Estimate = Callable[[AdvantageInputs], tuple[Tensor, Tensor | None]]
"""An estimator function: batch -> (advantages, returns or None)."""

ADVANTAGE_ESTIMATORS: dict[str, AdvantageEstimator] = {}
"""Registered estimators by name."""


def register_advantage(
    name: str, *, needs_critic: bool, needs_groups: bool
) -> Callable[[Estimate], AdvantageEstimator]:
    """Decorator registering an estimator under ``name`` (an error if the name is taken)."""

    def register(function: Estimate) -> AdvantageEstimator:
        if name in ADVANTAGE_ESTIMATORS:
            raise ValueError(f"an advantage estimator named {name!r} is already registered")
        estimator = AdvantageEstimator(name, needs_critic, needs_groups, function)
        ADVANTAGE_ESTIMATORS[name] = estimator
        return estimator

    return register


def advantage_estimator(name: str) -> AdvantageEstimator:
    """The estimator registered as ``name``; the error lists the registered names."""
    if name not in ADVANTAGE_ESTIMATORS:
        known = ", ".join(sorted(ADVANTAGE_ESTIMATORS))
        raise ValueError(f"unknown advantage estimator {name!r}; registered: {known}")
    return ADVANTAGE_ESTIMATORS[name]


def sequence_rewards(batch: AdvantageInputs) -> Tensor:
    """[B] score minus ``beta`` times the sequence's summed KL: the shaped reward of a whole sequence."""
    return batch.scores - batch.kl_coef * (batch.kl * batch.mask).sum(dim=1)


@register_advantage("gae", needs_critic=True, needs_groups=False)
def gae(batch: AdvantageInputs) -> tuple[Tensor, Tensor]:
    """GAE with the learned value (the spec, Schulman et al. 2016): see :func:`compute_gae`."""
    if batch.values is None:
        raise ValueError("gae needs values")
    return compute_gae(batch.rewards, batch.values, batch.mask, batch.gamma, batch.lam)


def _group_baseline(batch: AdvantageInputs, method: GroupMethod) -> tuple[Tensor, None]:
    grouped = group_advantages(sequence_rewards(batch).view(-1, batch.group_size), method=method)
    return broadcast_to_tokens(grouped.reshape(-1), batch.mask), None


@register_advantage("grpo", needs_critic=False, needs_groups=True)
def grpo(batch: AdvantageInputs) -> tuple[Tensor, None]:
    """Group-normalised sequence rewards (DeepSeekMath), on every response token."""
    return _group_baseline(batch, "grpo")


@register_advantage("rloo", needs_critic=False, needs_groups=True)
def rloo(batch: AdvantageInputs) -> tuple[Tensor, None]:
    """Sequence reward minus the leave-one-out mean of its group (Kool et al. 2019), on every token."""
    return _group_baseline(batch, "rloo")
