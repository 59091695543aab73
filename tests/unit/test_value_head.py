"""Value head: shapes, float32 output, zero init, and dropout only in training mode."""

from __future__ import annotations

import torch

from reft_lightning.models.value_head import ValueHead


def test_values_have_one_scalar_per_position_in_float32() -> None:
    head = ValueHead(hidden_size=8)
    values = head(torch.randn(3, 5, 8, dtype=torch.bfloat16))
    assert values.shape == (3, 5) and values.dtype == torch.float32


def test_zero_init_starts_every_value_at_zero_and_default_does_not() -> None:
    hidden = torch.randn(2, 4, 16)
    assert torch.equal(ValueHead(16, init="zeros")(hidden), torch.zeros(2, 4))
    assert ValueHead(16).eval()(hidden).abs().sum() > 0


def test_dropout_is_active_in_training_and_off_in_eval() -> None:
    torch.manual_seed(0)
    head = ValueHead(hidden_size=64, dropout=0.5)
    hidden = torch.randn(1, 3, 64)
    head.eval()
    assert torch.equal(head(hidden), head(hidden))
    head.train()
    assert not torch.equal(head(hidden), head(hidden))
