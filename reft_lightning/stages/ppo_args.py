"""The PPO settings of the ReFT stage, with the spec's defaults (reft-spec.md, "ReFT (PPO) stage")."""

from __future__ import annotations

from dataclasses import dataclass

from reft_lightning.rl.estimators import advantage_estimator
from reft_lightning.rl.kl import KLKind


@dataclass(frozen=True)
class PPOArgs:
    """One PPO iteration: sample, score, estimate advantages, then optimise for a few epochs."""

    num_samples: int = 1
    """Completions sampled per question per iteration (spec: 1)."""
    ppo_epochs: int = 2
    """Passes over each rollout batch (spec: 2)."""
    minibatch_size: int | None = None
    """Sequences per optimizer step; ``None`` = the whole rollout batch of this device (spec)."""
    micro_batch_size: int | None = None
    """Sequences per forward/backward inside a minibatch (gradient accumulation); ``None`` = minibatch.

    A minibatch's sequences go into micro-batches by length, each cut to the columns its sequences
    use: the same gradient as one pass over the minibatch (up to float rounding), less padding.
    """
    forward_batch_size: int | None = None
    """Sequences per no-grad forward of the evaluate step (old log-probs, values, reference log-probs),
    grouped by length as micro-batches are; ``None`` = every rollout of this device in one forward."""
    clip_range: float = 0.2
    """PPO ratio clip epsilon (spec: 0.2)."""
    value_clip_range: float = 0.2
    """Values are clipped to ``old +- value_clip_range`` (spec: 0.2)."""
    vf_coef: float = 5.0
    """Weight of the value loss in ``policy + vf_coef * value`` (spec: 5.0)."""
    gamma: float = 1.0
    """TD discount (spec: 1.0; the paper's text swaps the names of gamma and lambda)."""
    lam: float = 0.95
    """GAE lambda (spec: 0.95)."""
    kl_coef: float = 0.05
    """Beta, the per-token KL penalty weight (spec: 0.05 N-CoT, 0.01 P-CoT and MathQA-numeric)."""
    kl_estimator: KLKind = "k1"
    """Per-token KL estimate: ``k1`` (spec), ``k2`` or ``k3``."""
    adaptive_kl_target: float | None = None
    """Target KL (nats per sequence) of an adaptive controller; ``None`` keeps beta fixed (spec)."""
    adaptive_kl_horizon: int = 10000
    """Horizon (samples) of the adaptive controller."""
    advantage: str = "gae"
    """A registered advantage estimator (``reft_lightning.rl.estimators``): ``gae`` with a learned
    value (spec), or ``grpo`` / ``rloo``, group baselines over ``num_samples >= 2`` with no critic
    (no value head is built). A new estimator is registered with ``register_advantage`` in a module
    imported before the config is parsed."""
    whiten_advantages: bool = True
    """Whiten advantages over all response tokens of the batch, across processes (spec)."""
    max_grad_norm: float = 1.0
    """Gradient clipping by global norm (spec: 1.0)."""
    critic_warmup_iterations: int = 0
    """For the first N iterations only the value function learns; the policy's weights stay fixed.

    0 (spec) trains both from the start. During warm-up the policy loss gets weight 0 and the value
    head reads detached hidden states, so with the shared head (``value_model`` None) only the head
    learns; a separate value model learns with its head. Needs an estimator with a critic (``gae``).
    """
    skip_uniform_groups: bool = False
    """Leave groups whose ``num_samples`` scores are all equal out of the policy loss (DAPO's filter).

    Their sequences get policy-loss weight 0 and are left out of the advantage whitening statistics;
    the policy loss is averaged over the kept sequences (of all processes). The value loss still uses
    every sequence. No re-sampling: an iteration just learns from fewer sequences. Needs
    ``num_samples >= 2``. False (spec) keeps every sequence.
    """
    target_kl: float | None = None
    """Skip the remaining PPO epochs of an iteration once an epoch's mean ``approx_kl`` exceeds this.

    ``approx_kl`` is the k3 estimate of ``KL(pi_old || pi)`` in nats per response token, averaged
    over the epoch's minibatches and over processes. ``None`` (spec) always runs ``ppo_epochs``.
    """

    def __post_init__(self) -> None:
        if self.num_samples < 1 or self.ppo_epochs < 1:
            raise ValueError("num_samples and ppo_epochs must be at least 1")
        for name in ("minibatch_size", "micro_batch_size", "forward_batch_size"):
            size = getattr(self, name)
            if size is not None and size < 1:
                raise ValueError(f"{name} must be at least 1, or null for all sequences; got {size}")
        estimator = advantage_estimator(self.advantage)
        if estimator.needs_groups and self.num_samples < 2:
            raise ValueError(f"advantage={self.advantage!r} needs num_samples >= 2 (a group per question)")
        if self.critic_warmup_iterations < 0:
            raise ValueError(f"critic_warmup_iterations must be >= 0, got {self.critic_warmup_iterations}")
        if self.critic_warmup_iterations > 0 and not estimator.needs_critic:
            raise ValueError(
                f"critic_warmup_iterations needs an estimator with a critic, such as 'gae' (a value "
                f"function to warm up); advantage={self.advantage!r} has none"
            )
        if self.skip_uniform_groups and self.num_samples < 2:
            raise ValueError("skip_uniform_groups needs num_samples >= 2 (a group of samples per question)")
        if self.target_kl is not None and not self.target_kl > 0:
            raise ValueError(f"target_kl must be > 0 or None, got {self.target_kl}")
