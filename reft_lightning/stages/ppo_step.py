"""Step 6 of a PPO iteration: epochs over minibatches of one rollout batch, with manual optimisation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import lightning as L
import torch

from reft_lightning.models.sharding import whole
from reft_lightning.rl.losses import ppo_policy_loss, ppo_value_loss
from reft_lightning.stages.length_groups import PaddingExtents, RowGroup
from reft_lightning.stages.ppo_args import PPOArgs


class PPOModule(Protocol):
    """What :func:`optimise_rollout` needs of the stage that runs it (``ReFTModule`` provides it)."""

    iterations: int
    """PPO iterations done so far (critic warm-up counts them)."""
    device: torch.device
    trainer: L.Trainer
    """Its ``strategy.reduce`` and ``world_size`` make decisions and averages global."""

    def optimizers(self) -> Any: ...
    def lr_schedulers(self) -> Any: ...
    def manual_backward(self, loss: torch.Tensor) -> None: ...
    def policy_and_value_parameters(self) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]: ...
    def trainable_parameters(self) -> list[torch.nn.Parameter]: ...
    def guard_optimizer_step(self, grad_norm: torch.Tensor, parameters: list[torch.nn.Parameter]) -> None: ...
    def policy_outputs(
        self,
        sequences: torch.Tensor,
        attention: torch.Tensor,
        response_ids: torch.Tensor,
        detach_value_input: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...


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
    keep: torch.Tensor | None = None
    """[N] bool: the sequences of the policy loss (``skip_uniform_groups``); ``None``: all of them."""

    def part(self, group: RowGroup) -> Rollout:
        """``group``'s rows, cut to its columns: ``group.sequence_columns`` of ``sequences`` and
        ``attention``, ``group.response_columns`` of the ``[N, R]`` tensors."""
        index = group.index(self.sequences.device)
        sequence_side, response_side = group.sequence_columns, group.response_columns
        return Rollout(
            sequences=self.sequences[index, sequence_side],
            attention=self.attention[index, sequence_side],
            **{name: getattr(self, name)[index, response_side] for name in _RESPONSE_FIELDS},
            keep=None if self.keep is None else self.keep[index],
        )


_RESPONSE_FIELDS = ("response_ids", "mask", "old_logp", "old_values", "advantages", "returns")
"""The ``[N, R]`` fields of :class:`Rollout`."""


def optimise_rollout(module: PPOModule, rollout: Rollout, ppo: PPOArgs, use_values: bool) -> dict[str, float]:
    """``ppo_epochs`` passes over ``rollout`` in shuffled minibatches; one optimizer step per minibatch.

    Loss per minibatch (spec): policy loss + ``vf_coef`` * value loss, each reduced per sequence
    then averaged; micro-batches accumulate gradients weighted by their share of the minibatch.
    A minibatch's rows go into micro-batches by length, each cut to the columns its rows use
    (:mod:`reft_lightning.stages.length_groups`): the same loss, less padding in the forward.
    The stability levers of :class:`PPOArgs` change this when set:

    - ``critic_warmup_iterations``: while ``module.iterations`` is below it, the policy loss gets
      weight 0 (it still runs forward and backward, so that every process uses every parameter,
      as DDP needs), the value head reads detached hidden states, and the policy's gradients are
      dropped before the step: AdamW then leaves the policy's weights, and its moments, untouched.
    - ``rollout.keep`` (``skip_uniform_groups``): the policy loss covers the kept sequences only,
      averaged over those kept in the minibatch on all processes; a process with none kept still
      runs forward and backward with a zero-weight policy loss.
    - ``target_kl``: after an epoch whose mean ``approx_kl`` (averaged over processes) exceeds it,
      the remaining epochs are skipped.

    Returns the means over all minibatches of the losses and their diagnostics, the last gradient
    norm (before clipping), the learning rate, ``train/ppo_epochs_run`` and ``train/critic_warmup``.
    Statistics stay on the device while the epochs run and come to the host in one transfer at
    the end (plus one per epoch with ``target_kl``, whose decision needs the value). The rows'
    lengths come to the host once before the epochs, the shuffled order once per epoch.
    """
    optimizer, scheduler = module.optimizers(), module.lr_schedulers()
    count = rollout.sequences.shape[0]
    minibatch = ppo.minibatch_size or count
    extents = PaddingExtents.of(rollout.attention, rollout.mask)
    warmup = module.iterations < ppo.critic_warmup_iterations
    frozen = module.policy_and_value_parameters()[0] if warmup else []
    totals: dict[str, torch.Tensor] = {}
    steps = epochs_run = 0
    for epoch in range(ppo.ppo_epochs):
        order = torch.randperm(count, device=rollout.sequences.device).tolist()
        epoch_kl, epoch_steps = torch.zeros((), device=rollout.sequences.device), 0
        for start in range(0, count, minibatch):
            rows = order[start : start + minibatch]
            optimizer.zero_grad()
            policy_scale = None
            if rollout.keep is not None:
                kept = rollout.keep[torch.tensor(rows, device=rollout.keep.device)]
                policy_scale = _kept_policy_scale(module, kept)
            for group in extents.groups(rows, ppo.micro_batch_size):
                part = rollout.part(group)
                share = len(group.rows) / len(rows)
                stats = _loss_and_backward(
                    module, part, ppo, use_values, weight=share, warmup=warmup, policy_scale=policy_scale
                )
                for name, value in stats.items():  # float32 sums on the device, whatever the model dtype
                    weighted = value.float() * share
                    totals[name] = totals[name] + weighted if name in totals else weighted
                epoch_kl += stats["train/approx_kl"].float() * share
            for parameter in frozen:  # critic warm-up: AdamW skips parameters without a gradient
                parameter.grad = None
            parameters = module.trainable_parameters()
            grad_norm = whole(torch.nn.utils.clip_grad_norm_(parameters, ppo.max_grad_norm))
            module.guard_optimizer_step(grad_norm, parameters)  # a nan or inf norm: the step is skipped
            optimizer.step()
            scheduler.step()
            steps += 1
            epoch_steps += 1
        epochs_run += 1
        may_stop = ppo.target_kl is not None and epoch + 1 < ppo.ppo_epochs
        if may_stop and _mean_over_processes(module, epoch_kl / epoch_steps) > ppo.target_kl:
            break
    names = list(totals)
    values = torch.stack([totals[name] / steps for name in names] + [grad_norm.detach().float()]).tolist()
    means = dict(zip(names, values[:-1]))
    means["train/grad_norm"] = values[-1]
    means["train/lr"] = scheduler.get_last_lr()[0]
    means["train/ppo_epochs_run"] = float(epochs_run)
    means["train/critic_warmup"] = float(warmup)
    return means


def _kept_policy_scale(module: PPOModule, keep: torch.Tensor) -> torch.Tensor:
    """Factor turning the policy loss of a minibatch into its share of the mean over kept sequences.

    ``keep`` is the ``[M]`` bool of this process's minibatch. The policy loss of a micro-batch of
    ``m`` rows, weighted by ``m / M``, is ``sum_kept / m`` (skipped rows count 0); times
    ``M * W / kept_all`` (``W`` processes, ``kept_all`` kept rows of the minibatch on all of
    them) it becomes ``W * sum_kept / kept_all``, and DDP's average of the gradients over ``W``
    processes gives the gradient of the mean over all kept sequences. 0 kept anywhere: the loss is 0.
    Returned as a 0-dim float64 tensor on the device (no host sync).
    """
    kept = module.trainer.strategy.reduce(keep.sum(dtype=torch.float64), reduce_op="sum")
    return keep.numel() * module.trainer.world_size / kept.clamp(min=1.0)


def _mean_over_processes(module: PPOModule, value: torch.Tensor) -> float:
    """``value`` (0-dim) averaged over all processes, so that every process takes the same decision."""
    return float(module.trainer.strategy.reduce(value.to(torch.float64), reduce_op="mean"))


def _loss_and_backward(
    module: PPOModule,
    part: Rollout,
    ppo: PPOArgs,
    use_values: bool,
    weight: float,
    warmup: bool = False,
    policy_scale: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Forward and backward of one micro-batch; returns its statistics as detached 0-dim tensors.

    ``warmup``: policy loss with weight 0, value head on detached hidden states (critic warm-up).
    ``policy_scale``: with ``part.keep``, the factor of :func:`_kept_policy_scale`.
    """
    logp, values, _ = module.policy_outputs(
        part.sequences, part.attention, part.response_ids, detach_value_input=warmup
    )
    policy_mask = part.mask if part.keep is None else part.mask * part.keep.unsqueeze(1).to(part.mask.dtype)
    policy_loss, policy = ppo_policy_loss(
        logp, part.old_logp, part.advantages, policy_mask, ppo.clip_range, kl_mask=part.mask
    )  # approx_kl over every sequence: the policy moves on those left out of the loss too
    if policy_scale is not None:
        policy_loss = policy_loss * policy_scale.to(policy_loss.dtype)
    loss = 0.0 * policy_loss if warmup else policy_loss
    stats = {
        "train/policy_loss": policy_loss.detach(),
        "train/clip_fraction": policy.clip_fraction,
        "train/approx_kl": policy.approx_kl,
    }
    if use_values:
        value_loss, value = ppo_value_loss(
            values, part.old_values, part.returns, part.mask, ppo.value_clip_range
        )
        loss = loss + ppo.vf_coef * value_loss
        stats.update({
            "train/value_loss": value_loss.detach(),
            "train/value_clip_fraction": value.clip_fraction,
            "train/explained_variance": value.explained_variance,
        })  # fmt: skip
    module.manual_backward(loss * weight)
    stats["train/loss"] = loss.detach()
    return stats
