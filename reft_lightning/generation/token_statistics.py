"""The log-prob and entropy of each sampled token, recorded during ``generate`` (no second forward).

PPO needs ``log pi_old(token)`` of every response token under the distribution it was sampled from.
Recomputing it costs a forward over prompt + response; the decode loop already had those logits,
one step at a time. :class:`SampledTokenStatistics` is a transformers ``LogitsProcessor`` that reads
them as they pass: ``generate`` runs it after its own processors and before temperature, top-k and
top-p, so it sees the model's raw logits ``[B, V]`` of each step.
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessor


def log_softmax_and_entropy(logits: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``log softmax(logits / temperature)`` ``[..., V]`` and its entropy ``[...]``, float32 nats."""
    log_p = torch.log_softmax(logits.float() / temperature, dim=-1)
    return log_p, -(log_p.exp() * log_p).sum(dim=-1)


class SampledTokenStatistics(LogitsProcessor):
    """Per generated token: ``log softmax(logits / temperature)[token]`` and the entropy of
    ``softmax(logits / temperature)``, in float32 nats, the quantities
    ``ReFTModule.policy_outputs`` recomputes (top-k / top-p truncation not modelled, as there).

    ``generate`` calls it once per step with the logits of that step, before the step's token is
    drawn; the token appears as the last column of the next call's ``input_ids``, and the last
    step's token only in the returned sequences, so :meth:`finish` gathers it.

    Args:
        temperature: the sampling temperature the logits are divided by (a positive number).
    """

    def __init__(self, temperature: float) -> None:
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature!r}")
        self.temperature = temperature
        self._logprobs: list[torch.Tensor] = []
        self._entropies: list[torch.Tensor] = []
        self._step_log_softmax: torch.Tensor | None = None
        """``[B, V]`` log-softmax of the latest step, whose token is not drawn yet."""

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        """Record the previous step's token, then this step's distribution; ``scores`` pass unchanged."""
        if self._step_log_softmax is not None:
            self._gather(input_ids[:, -1])
        log_p, entropy = log_softmax_and_entropy(scores, self.temperature)
        self._entropies.append(entropy)
        self._step_log_softmax = log_p
        return scores

    def _gather(self, tokens: torch.Tensor) -> None:
        chosen = self._step_log_softmax.gather(-1, tokens.long().unsqueeze(-1)).squeeze(-1)
        self._logprobs.append(chosen)
        self._step_log_softmax = None

    def finish(self, response_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probs and entropies ``[B, R]`` of the generated ``response_ids`` ``[B, R]`` (one column
        per step: ``R`` is the number of calls), taken before any masking after EOS."""
        steps = len(self._entropies)
        if response_ids.shape[1] != steps:
            raise ValueError(
                f"{response_ids.shape[1]} generated tokens per row, but {steps} decode steps seen"
            )
        if steps == 0:
            empty = response_ids.new_zeros(response_ids.shape, dtype=torch.float32)
            return empty, empty.clone()
        self._gather(response_ids[:, -1])
        return torch.stack(self._logprobs, dim=1), torch.stack(self._entropies, dim=1)
