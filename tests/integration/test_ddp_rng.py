"""Two processes (DDP, gloo, CPU): each has its own random streams, and a resumed run restores each
rank's own states (a checkpoint holds all of them), so every rank continues as it would have."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import REPO
from tests.integration.cli_process import run_reft_ok

pytestmark = pytest.mark.slow  # several processes each: `make test` runs these after the rest


def ddp_sft_config(
    tmp_path: Path, model_dir: Path, callbacks: list[dict], name: str, max_steps: int = 4
) -> Path:
    """The demo SFT config on two CPU processes (DDP), validation off, batches of 4 on each."""
    config = yaml.safe_load((REPO / "configs" / "demo" / "sft_synthetic.yaml").read_text())
    config["trainer"].update(
        devices=2, strategy="ddp", max_steps=max_steps, log_every_n_steps=1, enable_progress_bar=False,
        limit_val_batches=0, num_sanity_val_steps=0, callbacks=callbacks,
    )  # fmt: skip
    config["model"]["init_args"]["model"] = str(model_dir)
    config["data"]["init_args"].update(num_train=64, num_val=4, num_test=4, batch_size=4, eval_batch_size=4)
    path = tmp_path / f"config_{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _config(tmp_path: Path, model_dir: Path, probe: Path) -> Path:
    callbacks = [
        {
            "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
            "init_args": {"every_n_train_steps": 2, "save_top_k": -1, "filename": "{step}"},
        },
        {"class_path": "tests.integration.probes.RecordRNG", "init_args": {"out": str(probe)}},
    ]
    return ddp_sft_config(tmp_path, model_dir, callbacks, probe.name)


def _fit(config: Path, run_dir: Path, *extra: str) -> None:
    run_reft_ok("fit", f"--config={config}", f"--trainer.default_root_dir={run_dir}", *extra)


def _digests(probe: Path) -> list[dict[str, str]]:
    return [json.loads((probe / f"rank{rank}.json").read_text()) for rank in (0, 1)]


def test_each_rank_has_and_resumes_its_own_random_streams(tiny_model_dir: Path, tmp_path: Path) -> None:
    full, resumed = tmp_path / "probe_full", tmp_path / "probe_resumed"
    _fit(_config(tmp_path, tiny_model_dir, full), tmp_path / "full")
    rank0, rank1 = _digests(full)
    assert set(rank0) == set(rank1) == {"1", "2", "3", "4"}
    assert all(rank0[step] != rank1[step] for step in rank0), "the two processes share random streams"

    checkpoint = tmp_path / "full" / "checkpoints" / "step=2.ckpt"
    saved = torch.load(checkpoint, weights_only=True)["rng_states"]
    assert isinstance(saved, list) and len(saved) == 2, "the checkpoint holds the states of both ranks"
    assert not torch.equal(saved[0]["torch"], saved[1]["torch"])

    _fit(_config(tmp_path, tiny_model_dir, resumed), tmp_path / "resumed", f"--ckpt_path={checkpoint}")
    again0, again1 = _digests(resumed)
    assert {step: again0[step] for step in ("3", "4")} == {step: rank0[step] for step in ("3", "4")}
    assert {step: again1[step] for step in ("3", "4")} == {step: rank1[step] for step in ("3", "4")}
