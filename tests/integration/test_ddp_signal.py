"""Two processes (DDP, gloo, CPU): SIGTERM to rank 0 alone stops both at the same step, after one
``last.ckpt`` that holds both ranks' random states, and the launcher exits 0; a run whose ranks
are all SIGKILLed resumes from ``last.ckpt`` to the weights of a run never interrupted."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.integration.cli_process import run_reft, run_reft_ok, signal_when_paused
from tests.integration.test_ddp_rng import ddp_sft_config

pytestmark = pytest.mark.slow  # several processes each: `make test` runs these after the rest

STEP = 3


def test_sigterm_to_rank_0_stops_every_rank_at_the_same_saved_step(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    pause = {"class_path": "tests.integration.killer.PauseAtStep", "init_args": {"step": STEP}}
    path = ddp_sft_config(tmp_path, tiny_model_dir, [pause], "signal", max_steps=8)

    status, stderr = signal_when_paused(path, tmp_path / "run", signal.SIGTERM, threads=1)
    assert status == 0, stderr[-3000:]
    assert stderr.count("SIGTERM received: saved") == 1, "rank 0 reports it once"
    saved = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert saved["global_step"] == STEP
    assert len(saved["rng_states"]) == 2, "both ranks took part in the save"


def test_a_killed_two_process_run_resumes_to_the_weights_of_a_straight_one(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Both ranks SIGKILL themselves after step 5; ``last.ckpt`` (every 2 steps) is from step 4."""
    last = {"class_path": "reft_lightning.LastCheckpoint", "init_args": {"every_n_train_batches": 2}}
    export = {"class_path": "reft_lightning.HFExport", "init_args": {"export_best": False}}
    kill = {"class_path": "tests.integration.killer.KillAfterStep", "init_args": {"step": 5}}
    straight = ddp_sft_config(tmp_path, tiny_model_dir, [last, export], "straight", max_steps=8)
    killed = ddp_sft_config(tmp_path, tiny_model_dir, [last, export, kill], "killed", max_steps=8)
    run_reft_ok("fit", f"--config={straight}", f"--trainer.default_root_dir={tmp_path / 'straight'}")
    result = run_reft(
        "fit", f"--config={killed}", f"--trainer.default_root_dir={tmp_path / 'killed'}", threads=1
    )
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
    assert (
        torch.load(tmp_path / "killed" / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 4
    )
    run_reft_ok(
        "fit", f"--config={straight}", f"--trainer.default_root_dir={tmp_path / 'killed'}", "--ckpt_path=last"
    )
    expected = load_file(tmp_path / "straight" / "hf" / "final" / "model.safetensors")
    actual = load_file(tmp_path / "killed" / "hf" / "final" / "model.safetensors")
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=0, atol=0, msg=name)
