"""Two processes (DDP, gloo, CPU): SIGTERM to rank 0 alone stops both at the same step, after one
``last.ckpt`` that holds both ranks' random states, and the launcher exits 0."""

from __future__ import annotations

import signal
from pathlib import Path

import torch

from tests.integration.cli_process import signal_when_paused
from tests.integration.test_ddp_rng import ddp_sft_config

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
