"""Model loading helpers: dtype names, weights taken from Lightning checkpoints, missing local paths."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed.checkpoint as dcp

from reft_lightning.models.loading import (
    load_causal_lm,
    looks_like_local_path,
    require_local_model,
    resolve_dtype,
    weights_from_lightning_checkpoint,
)
from reft_lightning.stages.reft import ReFTModule
from reft_lightning.stages.sft import SFTModule


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


@pytest.mark.parametrize(
    ("name", "local"),
    [
        ("Qwen/Qwen2.5-0.5B", False),
        ("gpt2", False),
        ("./nope", True),
        ("../nope", True),
        (".", True),
        ("/abs/model", True),
        ("~/models/m", True),
        ("runs/x/hf/best", True),
        ("nope/", True),
        ("runs/best", True),  # runs/ exists in the working directory
        ("absent/best", False),
    ],
)
def test_local_paths_are_told_from_hub_ids(
    name: str, local: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "runs").mkdir()
    monkeypatch.chdir(tmp_path)
    assert looks_like_local_path(name) is local


def test_a_hub_id_is_not_checked_locally(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same missing name passes as a hub id, and is refused once it reads as a local path."""
    monkeypatch.chdir(tmp_path)
    assert require_local_model("Qwen/Qwen2.5-0.5B", "model.init_args.model") is None  # no hub access
    (tmp_path / "Qwen").mkdir()  # now its first component is a local directory
    with pytest.raises(FileNotFoundError, match=r"model\.init_args\.model: model path not found: .*Qwen2\.5"):
        require_local_model("Qwen/Qwen2.5-0.5B", "model.init_args.model")


def test_a_missing_model_path_names_the_key_and_the_path(tiny_model_dir: Path, tmp_path: Path) -> None:
    missing = tmp_path / "runs" / "x" / "hf" / "best"
    with pytest.raises(FileNotFoundError, match=r"model\.init_args\.model: model path not found: .*best"):
        SFTModule(model=str(missing))
    with pytest.raises(FileNotFoundError, match=r"model\.init_args\.tokenizer: .*nope.*hub id"):
        SFTModule(model=str(tiny_model_dir), tokenizer="./nope")
    with pytest.raises(FileNotFoundError, match=r"model\.init_args\.model: .*nope"):
        load_causal_lm("./nope", key="model.init_args.model")
    module = ReFTModule(model=str(tiny_model_dir), reference=str(missing))
    with pytest.raises(FileNotFoundError, match=r"model\.init_args\.reference: model path not found"):
        module.configure_model()


def test_weights_are_read_from_a_sharded_checkpoint_directory(tmp_path: Path) -> None:
    """FSDP2 checkpoints are directories written by torch.distributed.checkpoint (here by one process)."""
    weights = {"model.transformer.w": torch.arange(6.0).reshape(2, 3), "value_head.b": torch.ones(1)}
    dcp.save({"state_dict": weights}, checkpoint_id=str(tmp_path / "best.ckpt"))
    loaded = weights_from_lightning_checkpoint(str(tmp_path / "best.ckpt"))
    assert loaded.keys() == {"transformer.w"}
    torch.testing.assert_close(loaded["transformer.w"], weights["model.transformer.w"], rtol=0, atol=0)
