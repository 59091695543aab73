"""Model loading helpers: dtype names and weights taken from Lightning checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from reft_lightning.models.loading import resolve_dtype, weights_from_lightning_checkpoint


def test_dtype_names_map_to_torch_dtypes_and_unknown_names_are_listed() -> None:
    assert resolve_dtype("bfloat16") is torch.bfloat16
    with pytest.raises(ValueError, match="float32"):
        resolve_dtype("fp8")


def test_weights_are_taken_from_under_the_model_prefix(tmp_path: Path) -> None:
    path = tmp_path / "stage.ckpt"
    weight = torch.ones(2)
    torch.save({"state_dict": {"model.layer.weight": weight, "value_head.linear.bias": torch.zeros(1)}}, path)
    assert list(weights_from_lightning_checkpoint(str(path))) == ["layer.weight"]


def test_a_checkpoint_without_model_weights_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"encoder.weight": torch.ones(1)}}, path)
    with pytest.raises(ValueError, match=r"other\.ckpt"):
        weights_from_lightning_checkpoint(str(path))
