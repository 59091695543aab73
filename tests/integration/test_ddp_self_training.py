"""Online self-training on two processes (DDP, gloo): processes whose rollouts hold different
numbers of correct samples still step together (every process runs one forward of its samples,
weighted 0 when none is correct), and the policy moves."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import REPO
from tests.integration.cli_process import run_reft_ok

pytestmark = pytest.mark.slow  # several processes each: `make test` runs these after the rest


def test_online_self_training_steps_on_two_processes(tiny_model_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "online"
    run_reft_ok(
        "fit",
        f"--config={REPO / 'configs' / 'demo' / 'online_self_training_synthetic.yaml'}",
        f"--trainer.default_root_dir={run}", "--trainer.devices=2", "--trainer.strategy=ddp",
        "--trainer.enable_progress_bar=false", "--trainer.max_steps=3", "--trainer.val_check_interval=3",
        f"--model.init_args.model={tiny_model_dir}", "--model.init_args.rollout.max_new_tokens=6",
        "--model.init_args.eval_generation.max_new_tokens=6", "--model.init_args.optimizer.lr=1e-3",
        "--model.init_args.reward=tests.integration.test_self_training.EvenIdReward",
        "--data.init_args.num_train=12", "--data.init_args.num_val=4", "--data.init_args.num_test=4",
        "--data.init_args.batch_size=2", "--data.init_args.eval_batch_size=2",
    )  # fmt: skip
    (metrics,) = run.glob("csv/version_*/metrics.csv")
    rows = [r for r in csv.DictReader(metrics.open()) if r.get("train/sample_loss")]
    assert len(rows) == 3
    final = load_file(run / "hf" / "final" / "model.safetensors")
    start = load_file(tiny_model_dir / "model.safetensors")
    assert any(not torch.equal(final[k], start[k]) for k in start), "the weights must have moved"
