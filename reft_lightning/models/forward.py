"""The training-side forward of a causal LM over prompt + response: logits and hidden states per response
token, with positions that skip left padding (as ``generate`` counts them)."""

from __future__ import annotations

import torch
from transformers import PreTrainedModel


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """[B, T] positions counting only attended tokens (0 for left padding), as ``generate`` uses."""
    return (attention_mask.long().cumsum(dim=1) - 1).clamp(min=0)


def response_forward(
    model: PreTrainedModel, sequences: torch.Tensor, attention_mask: torch.Tensor, response_length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and last hidden states at the positions that predict each response token.

    ``sequences`` is ``[B, P + R]`` (left-padded prompt, then response); returns logits
    ``[B, R, V]`` and hidden states ``[B, R, H]`` taken at positions ``P - 1 .. P + R - 2``, so
    entry ``t`` scores response token ``t`` and holds the state the value of step ``t`` is read from.
    """
    output = model(
        input_ids=sequences,
        attention_mask=attention_mask,
        position_ids=position_ids(attention_mask),
        output_hidden_states=True,
    )
    start = sequences.shape[1] - response_length - 1
    return output.logits[:, start:-1], output.hidden_states[-1][:, start:-1]
