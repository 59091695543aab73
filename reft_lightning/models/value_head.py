"""The value head of the ReFT paper: dropout + a linear map from the last hidden state to a scalar."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from transformers import PreTrainedModel


class ValueHead(nn.Module):
    """``V(s_t) = w^T dropout(h_t) + b`` on hidden states ``[B, T, H]``, giving values ``[B, T]``.

    Trained with the policy by the same optimizer (spec: dropout 0.1 + ``Linear(hidden, 1)``,
    randomly initialised as PyTorch does, which is ``init="default"``). ``init="zeros"`` starts every
    value at 0, so the first advantages are discounted rewards instead of differences of random
    values. Computes in float32 whatever the backbone's dtype.
    """

    def __init__(
        self, hidden_size: int, dropout: float = 0.1, init: Literal["default", "zeros"] = "default"
    ) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(hidden_size, 1)
        if init == "zeros":
            nn.init.zeros_(self.linear.weight)
            nn.init.zeros_(self.linear.bias)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(hidden_states.float())).squeeze(-1)


def freeze_untied_lm_head(value_model: PreTrainedModel) -> PreTrainedModel:
    """A separate value model's LM head is never used (only its hidden states feed the value head);
    an untied head (Llama's) would hold trainable weights without gradients, which DDP refuses, so
    freeze it. Returns ``value_model``."""
    head, embeddings = value_model.get_output_embeddings(), value_model.get_input_embeddings()
    if head is not None and head.weight is not embeddings.weight:
        head.requires_grad_(False)
    return value_model
