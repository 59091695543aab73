"""Resume: a demo run killed (SIGKILL) or signalled (SIGTERM, SIGINT) mid-epoch and resumed with
``--ckpt_path last`` ends with the same weights as one that ran straight through; ``last.ckpt`` of
a finished run is its final state, and resuming it trains nothing."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tests.conftest import REPO
from tests.integration.cli_process import run_reft, signal_when_paused

STEPS_PER_EPOCH = 6  # 48 training problems / batch 8
EPOCHS = 2


def _config(tmp_path: Path, model_dir: Path, test_callback: dict | None = None) -> Path:
    config = yaml.safe_load((REPO / "configs" / "demo" / "sft_synthetic.yaml").read_text())
    config["trainer"]["max_epochs"] = EPOCHS
    config["trainer"]["log_every_n_steps"] = 1
    config["trainer"]["enable_progress_bar"] = False
    config["trainer"]["callbacks"] = [
        {"class_path": "reft_lightning.LastCheckpoint", "init_args": {"every_n_train_batches": 2}},
        {"class_path": "reft_lightning.HFExport", "init_args": {"export_best": False}},
    ]
    if test_callback is not None:
        config["trainer"]["callbacks"].append(test_callback)
    config["model"]["init_args"]["model"] = str(model_dir)
    config["model"]["init_args"]["eval_generation"] = {"max_new_tokens": 12}
    config["data"]["init_args"].update(num_train=48, num_val=8, num_test=8, batch_size=8, eval_batch_size=8)
    path = tmp_path / f"config_{len(list(tmp_path.glob('config_*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _fit(config: Path, run_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_reft("fit", f"--config={config}", f"--trainer.default_root_dir={run_dir}", *extra)


def _last(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)


def _train_steps(run_dir: Path, version: int = -1) -> list[int]:
    """Optimizer steps with a logged ``train/loss`` in one run's CSV log (the newest by default)."""
    rows = sorted(run_dir.glob("csv/version_*/metrics.csv"))[version].read_text().splitlines()
    header = rows[0].split(",")
    loss, step = header.index("train/loss"), header.index("step")
    return [int(row.split(",")[step]) for row in rows[1:] if row.split(",")[loss]]


@pytest.fixture(scope="module")
def straight(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of the config straight through, the reference every resumed run must match."""
    folder = tmp_path_factory.mktemp("resume")
    result = _fit(_config(folder, tiny_model_dir), folder / "straight")
    assert result.returncode == 0, result.stderr[-3000:]
    return folder / "straight"


def _assert_same_final_weights(resumed: Path, straight: Path, tiny_model_dir: Path) -> None:
    expected = load_file(straight / "hf" / "final" / "model.safetensors")
    actual = load_file(resumed / "hf" / "final" / "model.safetensors")
    assert expected.keys() == actual.keys()
    initial = load_file(tiny_model_dir / "model.safetensors")
    assert any(not torch.equal(initial[k], expected[k]) for k in expected), "training changed nothing"
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=0, atol=0, msg=name)


def test_killed_run_resumed_from_last_matches_uninterrupted(
    straight: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "interrupted"
    killer = {
        "class_path": "tests.integration.killer.KillAfterStep",
        "init_args": {"step": STEPS_PER_EPOCH + 3},
    }
    killed = _fit(_config(tmp_path, tiny_model_dir, killer), run_dir)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not (run_dir / "hf" / "final").exists()
    assert _last(run_dir)["global_step"] == STEPS_PER_EPOCH + 2  # mid-epoch: the resume must skip 2 batches

    resumed = _fit(_config(tmp_path, tiny_model_dir), run_dir, "--ckpt_path=last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert min(_train_steps(run_dir)) == STEPS_PER_EPOCH + 2, "the resumed run must continue, not start over"
    _assert_same_final_weights(run_dir, straight, tiny_model_dir)


SIGNAL_STEP = STEPS_PER_EPOCH + 1  # not a multiple of every_n_train_batches: the signal's own save


def test_sigterm_saves_at_the_step_boundary_exits_0_and_resumes_exactly(
    straight: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    pause = {"class_path": "tests.integration.killer.PauseAtStep", "init_args": {"step": SIGNAL_STEP}}
    run_dir = tmp_path / "preempted"
    status, stderr = signal_when_paused(_config(tmp_path, tiny_model_dir, pause), run_dir, signal.SIGTERM)
    assert status == 0, stderr[-3000:]
    last = run_dir / "checkpoints" / "last.ckpt"
    said = f"SIGTERM received: saved {last} after training batch {SIGNAL_STEP}; resume with --ckpt_path last"
    assert said in stderr
    assert _last(run_dir)["global_step"] == SIGNAL_STEP
    assert not (run_dir / "hf" / "final").exists(), "a stopped run is not a finished one"
    assert list((run_dir / "checkpoints").iterdir()) == [last], "no temp file left behind"

    resumed = _fit(_config(tmp_path, tiny_model_dir), run_dir, "--ckpt_path=last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert min(_train_steps(run_dir)) == SIGNAL_STEP
    _assert_same_final_weights(run_dir, straight, tiny_model_dir)


def test_sigint_saves_at_the_step_boundary_and_exits_130(tiny_model_dir: Path, tmp_path: Path) -> None:
    pause = {"class_path": "tests.integration.killer.PauseAtStep", "init_args": {"step": 3}}
    run_dir = tmp_path / "interrupted"
    status, stderr = signal_when_paused(_config(tmp_path, tiny_model_dir, pause), run_dir, signal.SIGINT)
    assert status == 130, stderr[-3000:]
    assert "SIGINT received: saved" in stderr
    assert _last(run_dir)["global_step"] == 3


def test_last_is_the_final_state_and_resuming_a_finished_run_trains_nothing(straight: Path) -> None:
    assert _last(straight)["global_step"] == EPOCHS * STEPS_PER_EPOCH
    again = _fit(straight.parent / "config_0.yaml", straight, "--ckpt_path=last")
    assert again.returncode == 0, again.stderr[-3000:]
    versions = range(len(list(straight.glob("csv/version_*/metrics.csv"))))
    steps = [step for version in versions for step in _train_steps(straight, version)]
    assert steps == list(range(EPOCHS * STEPS_PER_EPOCH)), "the resumed finished run took no step"
    assert _last(straight)["global_step"] == EPOCHS * STEPS_PER_EPOCH
