"""Step 6 of a PPO iteration: epochs over minibatches of one rollout batch, with manual optimisation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from reft_lightning.rl.losses import ppo_policy_loss, ppo_value_loss
from reft_lightning.stages.ppo_args import PPOArgs

if TYPE_CHECKING:
    from reft_lightning.stages.reft import ReFTModule


@dataclass
class Rollout:
    """What one PPO iteration learns from. ``N`` sequences, ``P`` prompt and ``R`` response tokens."""

    sequences: torch.Tensor
    """[N, P + R] left-padded prompt followed by the sampled response."""
    attention: torch.Tensor
    """[N, P + R] 1 on real prompt tokens and on response tokens up to and including EOS."""
    response_ids: torch.Tensor
    """[N, R] the sampled tokens."""
    mask: torch.Tensor
    """[N, R] the response mask (1 up to and including EOS)."""
    old_logp: torch.Tensor
    """[N, R] log-probs of the sampled tokens under the policy that sampled them."""
    old_values: torch.Tensor
    """[N, R] values at sampling time."""
    advantages: torch.Tensor
    """[N, R] (whitened) advantages."""
    returns: torch.Tensor
    """[N, R] value targets: GAE advantages (before whitening) + old values."""

    def select(self, index: torch.Tensor) -> Rollout:
        """The rows ``index`` of every tensor."""
        return Rollout(*(getattr(self, name)[index] for name in self.__dataclass_fields__))


def optimise_rollout(
    module: ReFTModule, rollout: Rollout, ppo: PPOArgs, use_values: bool
) -> dict[str, float]:
    """``ppo_epochs`` passes over ``rollout`` in shuffled minibatches; one optimizer step per minibatch.

    Loss per minibatch (spec): policy loss + ``vf_coef`` * value loss, each reduced per sequence
    then averaged; micro-batches accumulate gradients weighted by their share of the minibatch.
    Returns the means over all minibatches of the losses and their diagnostics, and the last
    gradient norm (before clipping).
    """
    optimizer, scheduler = module.optimizers(), module.lr_schedulers()
    count = rollout.sequences.shape[0]
    minibatch = ppo.minibatch_size or count
    micro = ppo.micro_batch_size or minibatch
    totals: dict[str, float] = {}
    steps = 0
    for _ in range(ppo.ppo_epochs):
        order = torch.randperm(count, device=rollout.sequences.device)
        for start in range(0, count, minibatch):
            rows = order[start : start + minibatch]
            optimizer.zero_grad()
            for micro_start in range(0, rows.numel(), micro):
                part = rollout.select(rows[micro_start : micro_start + micro])
                stats = _loss_and_backward(
                    module, part, ppo, use_values, weight=part.mask.shape[0] / rows.numel()
                )
                for name, value in stats.items():
                    totals[name] = totals.get(name, 0.0) + value * part.mask.shape[0] / rows.numel()
            grad_norm = torch.nn.utils.clip_grad_norm_(module.trainable_parameters(), ppo.max_grad_norm)
            optimizer.step()
            scheduler.step()
            steps += 1
    means = {name: value / steps for name, value in totals.items()}
    means["train/grad_norm"] = float(grad_norm)
    means["train/lr"] = scheduler.get_last_lr()[0]
    return means


def _loss_and_backward(
    module: ReFTModule, part: Rollout, ppo: PPOArgs, use_values: bool, weight: float
) -> dict[str, float]:
    logp, values, _ = module.policy_outputs(part.sequences, part.attention, part.response_ids)
    policy_loss, policy = ppo_policy_loss(logp, part.old_logp, part.advantages, part.mask, ppo.clip_range)
    loss = policy_loss
    stats = {
        "train/policy_loss": float(policy_loss.detach()),
        "train/clip_fraction": float(policy.clip_fraction),
        "train/approx_kl": float(policy.approx_kl),
    }
    if use_values:
        value_loss, value = ppo_value_loss(
            values, part.old_values, part.returns, part.mask, ppo.value_clip_range
        )
        loss = loss + ppo.vf_coef * value_loss
        stats.update({
            "train/value_loss": float(value_loss.detach()),
            "train/value_clip_fraction": float(value.clip_fraction),
            "train/explained_variance": float(value.explained_variance),
        })  # fmt: skip
    module.manual_backward(loss * weight)
    stats["train/loss"] = float(loss.detach())
    return stats
