"""`reft export CKPT OUT`: a stage checkpoint (a file, or a sharded directory) becomes a directory
that plain transformers loads, holding exactly the checkpoint's policy weights; bad input is
refused naming the path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed.checkpoint as dcp
import yaml
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from reft_lightning.cli import main
from tests.conftest import REPO


def _export(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m reft_lightning.cli export <args>`` in a fresh interpreter, as a user runs it."""
    command = [sys.executable, "-m", "reft_lightning.cli", "export", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def fit_checkpoint(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``last.ckpt`` of two SFT steps of the tiny model (the demo's SFT config, shrunk)."""
    folder = tmp_path_factory.mktemp("export_fit")
    config = yaml.safe_load((REPO / "configs" / "demo" / "sft_synthetic.yaml").read_text())
    config["trainer"].update(
        max_steps=2, limit_val_batches=0, num_sanity_val_steps=0, enable_progress_bar=False,
        logger=False, callbacks=[], default_root_dir=str(folder / "run"),
    )  # fmt: skip
    config["model"]["init_args"]["model"] = str(tiny_model_dir)
    config["data"]["init_args"].update(num_train=16, num_val=4, num_test=4, batch_size=8)
    (folder / "sft.yaml").write_text(yaml.safe_dump(config))
    main(["fit", f"--config={folder / 'sft.yaml'}"])
    return folder / "run" / "checkpoints" / "last.ckpt"


def _checkpoint(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def _policy(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The checkpoint's ``model.*`` tensors, the prefix removed (read here, not by the code under test)."""
    return {k[len("model.") :]: v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}


def _assert_exported(out: Path, expected: dict[str, torch.Tensor], dtype: torch.dtype) -> None:
    """``out`` loads in plain transformers with exactly ``expected`` (cast to ``dtype``) and generates."""
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.dtype == dtype
    state = model.state_dict()
    assert state.keys() == expected.keys() | {"lm_head.weight"}
    for name, weight in expected.items():
        torch.testing.assert_close(state[name], weight.to(dtype), rtol=0, atol=0, msg=name)
    torch.testing.assert_close(state["lm_head.weight"], state["transformer.wte.weight"], rtol=0, atol=0)
    tokenizer = AutoTokenizer.from_pretrained(out)
    ids = tokenizer("Question: Mia has 3 shells.", return_tensors="pt")
    generated = model.generate(**ids, max_new_tokens=4, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert generated.shape[1] > ids["input_ids"].shape[1]


def _save(checkpoint: dict[str, Any], path: Path) -> Path:
    torch.save(checkpoint, path)
    return path


def test_a_fit_checkpoint_exports_exactly_its_trained_policy(
    fit_checkpoint: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    checkpoint = _checkpoint(fit_checkpoint)
    expected = _policy(checkpoint)
    initial = load_file(tiny_model_dir / "model.safetensors")
    assert any(not torch.equal(expected[k], initial[k]) for k in initial), "the fit changed the weights"
    out = tmp_path / "hf"
    result = _export(str(fit_checkpoint), str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    count = sum(w.numel() for k, w in expected.items() if k != "lm_head.weight")
    assert f"exported {fit_checkpoint} to {out} (model and tokenizer): {count:,} parameters, float32" in (
        result.stdout.splitlines()
    )
    _assert_exported(out, expected, torch.float32)
    original = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert AutoTokenizer.from_pretrained(out).get_vocab() == original.get_vocab()


def test_a_reft_checkpoint_exports_only_the_policy_and_a_left_out_tied_head_is_filled(
    fit_checkpoint: Path, tmp_path: Path
) -> None:
    checkpoint = _checkpoint(fit_checkpoint)
    expected = _policy(checkpoint)
    state = checkpoint["state_dict"]
    del state["model.lm_head.weight"]  # tied to the embeddings: a checkpoint may leave it out
    for key in list(state):  # a ReFT stage's frozen reference and value model, perturbed
        state["reference." + key[len("model.") :]] = state[key] + 1
        state["value_model." + key[len("model.") :]] = state[key] - 1
    state["value_head.linear.weight"] = torch.ones(1, 64)
    path = _save(checkpoint, tmp_path / "reft.ckpt")
    main(["export", str(path), str(tmp_path / "hf")])
    del expected["lm_head.weight"]
    _assert_exported(tmp_path / "hf", expected, torch.float32)


def test_a_tied_head_that_differs_from_the_embeddings_is_refused(
    fit_checkpoint: Path, tmp_path: Path
) -> None:
    checkpoint = _checkpoint(fit_checkpoint)
    checkpoint["state_dict"]["model.lm_head.weight"] = checkpoint["state_dict"]["model.lm_head.weight"] + 1
    path = _save(checkpoint, tmp_path / "untied.ckpt")
    with pytest.raises(SystemExit, match=r"untied\.ckpt: model\.lm_head\.weight differs"):
        main(["export", str(path), str(tmp_path / "hf")])
    assert not (tmp_path / "hf").exists()


def test_flags_override_the_hyperparameters_and_a_missing_model_name_is_asked_for(
    fit_checkpoint: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    checkpoint = _checkpoint(fit_checkpoint)
    assert checkpoint["hyper_parameters"]["model"] == str(tiny_model_dir)
    del checkpoint["hyper_parameters"]
    path = _save(checkpoint, tmp_path / "bare.ckpt")
    with pytest.raises(SystemExit, match=r"bare\.ckpt: its hyper_parameters name no model; give --model"):
        main(["export", str(path), str(tmp_path / "hf")])
    main(["export", str(path), str(tmp_path / "hf"), f"--model={tiny_model_dir}", "--dtype=bfloat16"])
    _assert_exported(tmp_path / "hf", _policy(checkpoint), torch.bfloat16)


def test_a_sharded_checkpoint_directory_exports_with_its_hyperparameters(
    fit_checkpoint: Path, tmp_path: Path
) -> None:
    """FSDP2 writes ``last.ckpt/`` with torch.distributed.checkpoint (here by one process), and the
    rest of the checkpoint (hyperparameters) in ``meta.pt`` beside the shards."""
    checkpoint = _checkpoint(fit_checkpoint)
    sharded = tmp_path / "last.ckpt"
    dcp.save({"state_dict": checkpoint["state_dict"]}, checkpoint_id=str(sharded))
    torch.save({"hyper_parameters": checkpoint["hyper_parameters"]}, sharded / "meta.pt")  # as Lightning does
    assert sharded.is_dir()
    main(["export", str(sharded), str(tmp_path / "hf")])
    _assert_exported(tmp_path / "hf", _policy(checkpoint), torch.float32)


def test_a_missing_checkpoint_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    missing = tmp_path / "runs" / "nope.ckpt"
    result = _export(str(missing), str(tmp_path / "hf"))
    assert result.returncode == 1
    assert f"reft export: {missing}: checkpoint not found" in result.stderr
    assert not (tmp_path / "hf").exists()


def test_a_non_empty_out_is_kept_unless_overwrite_is_given(fit_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "hf"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit, match=r"hf: exists and is not empty; pass --overwrite"):
        main(["export", str(fit_checkpoint), str(out)])
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    main(["export", str(fit_checkpoint), str(out), "--overwrite"])
    _assert_exported(out, _policy(_checkpoint(fit_checkpoint)), torch.float32)


def test_checkpoints_that_are_not_a_stages_are_refused_naming_the_path(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    other = _save({"state_dict": {"encoder.weight": torch.ones(2)}}, tmp_path / "other.ckpt")
    weights_only = _save({"transformer.wte.weight": torch.ones(2)}, tmp_path / "weights.pt")
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint")
    cases = {
        other: "no weights under 'model.'",
        weights_only: "holds no state_dict",
        text: "torch.load cannot read it",
        tiny_model_dir: "a directory without .metadata",  # an HF model directory, not a checkpoint
    }
    for path, reason in cases.items():
        with pytest.raises(SystemExit) as stopped:
            main(["export", str(path), str(tmp_path / "hf")])
        assert str(stopped.value.code).startswith(f"reft export: {path}: "), stopped.value.code
        assert reason in str(stopped.value.code)
    assert not (tmp_path / "hf").exists()


def test_a_non_finite_weight_is_never_exported(fit_checkpoint: Path, tmp_path: Path) -> None:
    checkpoint = _checkpoint(fit_checkpoint)
    checkpoint["state_dict"]["model.transformer.h.1.mlp.c_fc.weight"][0, 0] = float("nan")
    path = _save(checkpoint, tmp_path / "nan.ckpt")
    with pytest.raises(
        SystemExit, match=r"not writing the export .*hf: tensor 'transformer\.h\.1\.mlp\.c_fc"
    ):
        main(["export", str(path), str(tmp_path / "hf")])
    assert not (tmp_path / "hf").exists()


def test_reft_help_names_the_export_command(capsys: pytest.CaptureFixture[str]) -> None:
    for command in (["--help"], ["export", "--help"]):
        with pytest.raises(SystemExit) as stopped:
            main(command)
        assert stopped.value.code == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "`reft export CKPT OUT` writes a checkpoint's model as a Hugging Face directory" in printed
    assert "usage: reft export [-h] [--model MODEL] [--tokenizer TOKENIZER]" in printed
