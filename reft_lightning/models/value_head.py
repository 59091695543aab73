"""The value head of the ReFT paper: dropout + a linear map from the last hidden state to a scalar."""

from __future__ import annotations

import torch
from torch import nn


class ValueHead(nn.Module):
    """``V(s_t) = w^T dropout(h_t) + b`` on hidden states ``[B, T, H]``, giving values ``[B, T]``.

    Randomly initialised and trained with the policy by the same optimizer (spec: dropout 0.1 +
    ``Linear(hidden, 1)``). Computes in float32 whatever the backbone's dtype.
    """

    def __init__(self, hidden_size: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(hidden_size, 1)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(hidden_states.float())).squeeze(-1)
