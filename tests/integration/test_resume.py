"""Resume: a demo run killed mid-epoch and resumed with --ckpt_path last ends with the same weights."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file

from tests.conftest import REPO
from tests.integration.cli_process import run_reft

STEPS_PER_EPOCH = 6  # 48 training problems / batch 8


def _config(tmp_path: Path, model_dir: Path, kill_at: int | None) -> Path:
    config = yaml.safe_load((REPO / "configs" / "demo" / "sft_synthetic.yaml").read_text())
    config["trainer"]["max_epochs"] = 2
    config["trainer"]["log_every_n_steps"] = 1
    config["trainer"]["enable_progress_bar"] = False
    config["trainer"]["callbacks"] = [
        {
            "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
            "init_args": {"save_last": True, "every_n_train_steps": 2},
        },
        {"class_path": "reft_lightning.HFExport", "init_args": {"export_best": False}},
    ]
    if kill_at is not None:
        config["trainer"]["callbacks"].append(
            {"class_path": "tests.integration.killer.KillAfterStep", "init_args": {"step": kill_at}}
        )
    config["model"]["init_args"]["model"] = str(model_dir)
    config["model"]["init_args"]["eval_generation"] = {"max_new_tokens": 12}
    config["data"]["init_args"].update(num_train=48, num_val=8, num_test=8, batch_size=8, eval_batch_size=8)
    path = tmp_path / f"config_{kill_at}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _fit(config: Path, run_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_reft("fit", f"--config={config}", f"--trainer.default_root_dir={run_dir}", *extra)


def test_killed_run_resumed_from_last_matches_uninterrupted(tiny_model_dir: Path, tmp_path: Path) -> None:
    straight = _fit(_config(tmp_path, tiny_model_dir, None), tmp_path / "straight")
    assert straight.returncode == 0, straight.stderr[-3000:]

    interrupted_dir = tmp_path / "interrupted"
    killed = _fit(_config(tmp_path, tiny_model_dir, STEPS_PER_EPOCH + 3), interrupted_dir)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not (interrupted_dir / "hf" / "final").exists()
    last = torch.load(interrupted_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == STEPS_PER_EPOCH + 2  # mid-epoch: the resume must skip 2 batches

    resumed = _fit(_config(tmp_path, tiny_model_dir, None), interrupted_dir, "--ckpt_path=last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    resumed_log = sorted(interrupted_dir.glob("csv/version_*/metrics.csv"))[-1].read_text().splitlines()
    resumed_steps = [int(line.split(",")[1]) for line in resumed_log[1:]]
    assert min(resumed_steps) == STEPS_PER_EPOCH + 2, "the resumed run must continue, not start over"

    expected = load_file(tmp_path / "straight" / "hf" / "final" / "model.safetensors")
    actual = load_file(interrupted_dir / "hf" / "final" / "model.safetensors")
    assert expected.keys() == actual.keys()
    initial = load_file(tiny_model_dir / "model.safetensors")
    assert any(not torch.equal(initial[k], expected[k]) for k in expected), "training changed nothing"
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=0, atol=0, msg=name)
