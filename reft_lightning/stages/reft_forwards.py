"""Step 3 of a ReFT iteration and the forward the PPO loss takes: the policy, the value model and
the frozen reference over rollouts.

:class:`RolloutForwards` is a mixin of ``ReFTModule`` (``stages/reft.py``), which builds the models
it reads. All forwards take left-padded prompts followed by right-padded responses (``[N, P + R]``
sequences and attention) and give per-response-token outputs (``[N, R]``); the LM head runs only on
the response positions (``models/forward.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import torch
from transformers import PreTrainedModel

from reft_lightning.generation import Completions, SamplingArgs
from reft_lightning.models.forward import response_forward, response_hidden
from reft_lightning.models.value_head import ValueHead
from reft_lightning.rl.gae import masked_mean
from reft_lightning.rl.logprobs import token_entropy, token_logprobs
from reft_lightning.stages.length_groups import PaddingExtents, in_groups
from reft_lightning.stages.ppo_args import PPOArgs


class RolloutForwards:
    """Old log-probs, values, entropy and reference log-probs of rollouts (step 3), and the policy's
    log-probs and values with grad for the PPO loss (:meth:`policy_outputs`, step 6)."""

    model: PreTrainedModel
    """The policy."""
    reference: PreTrainedModel | None
    """The frozen reference; ``None`` with LoRA (the policy with its adapters disabled)."""
    value_model: PreTrainedModel | None
    """A separate value model; ``None``: the value head reads the policy's hidden states."""
    value_head: ValueHead | None
    """``None`` for an estimator without a critic."""
    rollout_args: SamplingArgs
    """The rollout temperature divides every logit, so log-probs are those tokens were sampled from."""
    ppo: PPOArgs
    """``forward_batch_size``: rollouts per step-3 forward."""

    @torch.no_grad()
    def _evaluate_rollouts(
        self, sequences: torch.Tensor, attention: torch.Tensor, completions: Completions
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Old log-probs ``[N, R]``, old values ``[N, R]``, mean entropy per token and reference
        log-probs ``[N, R]``, in groups of ``ppo.forward_batch_size`` rollouts of similar length
        (:func:`in_groups`); old log-probs and entropy from :meth:`_evaluate_rollout_group`, or
        (``old_logprobs: sampling``) the decode loop's."""
        mask, sampled = completions.response_mask, completions.logprobs is not None
        logp, values, entropy, ref_logp = in_groups(
            PaddingExtents.of(attention, mask), self.ppo.forward_batch_size,
            partial(self._evaluate_rollout_group, recompute_logprobs=not sampled),
            sequences, attention, completions.response_ids,
        )  # fmt: skip
        if sampled:
            logp, entropy = completions.logprobs, completions.entropy
        return logp, values, masked_mean(entropy, mask), ref_logp

    def _evaluate_rollout_group(
        self,
        sequences: torch.Tensor,
        attention: torch.Tensor,
        response_ids: torch.Tensor,
        recompute_logprobs: bool,
    ) -> tuple[torch.Tensor | None, ...]:
        """Step 3 on some rollouts, dropout off: old log-probs and per-token entropy ``[n, r]`` (by
        a policy forward if ``recompute_logprobs``, else ``None``), values ``[n, r]`` (with
        ``recompute_logprobs`` off, from a forward that computes no logits) and reference log-probs."""
        logp = entropy = None
        with self._eval_mode():
            if recompute_logprobs:
                logp, values, logits = self.policy_outputs(sequences, attention, response_ids)
                entropy = token_entropy(logits)
            else:
                values = self._values(sequences, attention, response_ids.shape[1])
            return logp, values, entropy, self._reference_logprobs(sequences, attention, response_ids)

    def policy_outputs(
        self,
        sequences: torch.Tensor,
        attention: torch.Tensor,
        response_ids: torch.Tensor,
        detach_value_input: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Log-probs ``[N, R]`` and values ``[N, R]`` of the response tokens, and their logits.

        Logits are divided by the rollout temperature, so the log-probs are those of the distribution
        the tokens were sampled from (``top_k`` / ``top_p`` truncation is not modelled).
        ``detach_value_input`` (critic warm-up): the value head reads detached hidden states, so the
        value loss reaches only the head (and a separate value model), never the policy's backbone.
        """
        length = response_ids.shape[1]
        logits, hidden = response_forward(self.model, sequences, attention, length)
        logits = logits / self.rollout_args.temperature
        logp = token_logprobs(logits, response_ids)
        return logp, self._values(sequences, attention, length, hidden, detach_value_input), logits

    def _values(
        self,
        sequences: torch.Tensor,
        attention: torch.Tensor,
        length: int,
        policy_hidden: torch.Tensor | None = None,
        detach_value_input: bool = False,
    ) -> torch.Tensor:
        """Values ``[N, R]`` of the ``length`` response tokens: the value head on a separate value
        model's hidden states, else on the policy's (``policy_hidden`` ``[N, R, H]`` when the caller
        has them, else from a forward without logits); zeros without a critic (never used)."""
        if self.value_head is None:
            return sequences.new_zeros((sequences.shape[0], length), dtype=torch.float32)
        if self.value_model is not None:
            hidden = response_hidden(self.value_model, sequences, attention, length)
        else:
            if policy_hidden is None:
                policy_hidden = response_hidden(self.model, sequences, attention, length)
            hidden = policy_hidden.detach() if detach_value_input else policy_hidden
        return self.value_head(hidden)

    @torch.no_grad()
    def _reference_logprobs(
        self, sequences: torch.Tensor, attention: torch.Tensor, response_ids: torch.Tensor
    ) -> torch.Tensor:
        if self.reference is None:  # LoRA: the starting policy is the base without its adapters
            with self.model.disable_adapter(), self._eval_mode():
                logits, _ = response_forward(self.model, sequences, attention, response_ids.shape[1])
        else:
            self.reference.eval()
            logits, _ = response_forward(self.reference, sequences, attention, response_ids.shape[1])
        return token_logprobs(logits / self.rollout_args.temperature, response_ids)

    @contextmanager
    def _eval_mode(self) -> Iterator[None]:
        """Dropout off for sampling and scoring (policy, value model, value head), restored after."""
        modules = [m for m in (self.model, self.value_model, self.value_head) if m is not None]
        modes = [m.training for m in modules]
        for module in modules:
            module.eval()
        try:
            yield
        finally:
            for module, mode in zip(modules, modes):
                module.train(mode)
