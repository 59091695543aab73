"""The training-side forward of a causal LM over prompt + response: logits and hidden states per response
token, with positions that skip left padding (as ``generate`` counts them).

Only the positions that score a response token go through the LM head (transformers'
``logits_to_keep``), and a value model's head is skipped altogether: the vocabulary projection is a
large share of a small model's work and none of the prompt positions' logits are used.
"""

from __future__ import annotations

import inspect
from functools import cache

import torch
from transformers import PreTrainedModel
from transformers.utils import ModelOutput


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """[B, T] positions counting only attended tokens (0 for left padding), as ``generate`` uses."""
    return (attention_mask.long().cumsum(dim=1) - 1).clamp(min=0)


@cache
def _keeps_logits(model_class: type) -> bool:
    """Whether ``model_class.forward`` takes ``logits_to_keep`` (most transformers causal LMs do)."""
    return "logits_to_keep" in inspect.signature(model_class.forward).parameters


def _forward(
    model: PreTrainedModel, sequences: torch.Tensor, attention_mask: torch.Tensor, keep: int
) -> ModelOutput:
    """The model's output over ``sequences`` with hidden states, logits only of the last ``keep``
    positions where the model supports it (all of them otherwise). A LoRA (peft) policy passes the
    argument through to its base model."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    kwargs = {"logits_to_keep": keep} if _keeps_logits(type(inner)) else {}
    return model(
        input_ids=sequences,
        attention_mask=attention_mask,
        position_ids=position_ids(attention_mask),
        output_hidden_states=True,
        **kwargs,
    )


def response_forward(
    model: PreTrainedModel, sequences: torch.Tensor, attention_mask: torch.Tensor, response_length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and last hidden states at the positions that predict each response token.

    ``sequences`` is ``[B, P + R]`` (left-padded prompt, then response); returns logits
    ``[B, R, V]`` and hidden states ``[B, R, H]`` taken at positions ``P - 1 .. P + R - 2``, so
    entry ``t`` scores response token ``t`` and holds the state the value of step ``t`` is read from.
    """
    output = _forward(model, sequences, attention_mask, response_length + 1)
    start = sequences.shape[1] - response_length - 1
    logits = output.logits[:, -(response_length + 1) :]
    return logits[:, :-1], output.hidden_states[-1][:, start:-1]


def response_hidden(
    model: PreTrainedModel, sequences: torch.Tensor, attention_mask: torch.Tensor, response_length: int
) -> torch.Tensor:
    """The hidden states ``[B, R, H]`` of :func:`response_forward` alone, for a value model: its LM
    head runs on one position only (the model's root forward still runs, as FSDP2 needs)."""
    output = _forward(model, sequences, attention_mask, 1)
    start = sequences.shape[1] - response_length - 1
    return output.hidden_states[-1][:, start:-1]
