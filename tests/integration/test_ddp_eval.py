"""Evaluation on two processes (DDP, gloo): every question counts exactly once. Lightning's own
``DistributedSampler`` would pad 5 validation questions to 6 by repeating the first one."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from reft_lightning.data.datasets import SyntheticDataModule
from tests.conftest import REPO
from tests.integration.cli_process import run_reft_ok

pytestmark = pytest.mark.slow  # several processes each: `make test` runs these after the rest

SPLITS = ["--data.init_args.num_train=8", "--data.init_args.num_val=5", "--data.init_args.num_test=4"]


def test_validation_on_two_processes_counts_each_question_once(tiny_model_dir: Path, tmp_path: Path) -> None:
    first = SyntheticDataModule(num_train=8, num_val=5, num_test=4).load_splits()["val"][0].id
    reward = json.dumps({"class_path": "tests.integration.one_question_reward.OneQuestionReward",
                         "init_args": {"question_id": first}})  # fmt: skip
    run = tmp_path / "validate"
    run_reft_ok(
        "validate",
        f"--config={REPO / 'configs' / 'demo' / 'sft_synthetic.yaml'}",
        f"--trainer.default_root_dir={run}", "--trainer.devices=2", "--trainer.strategy=ddp",
        "--trainer.enable_progress_bar=false", f"--model.init_args.model={tiny_model_dir}",
        "--model.init_args.eval_generation.max_new_tokens=4", f"--model.init_args.reward={reward}",
        *SPLITS, "--data.init_args.eval_batch_size=2",
    )  # fmt: skip
    (metrics,) = run.glob("csv/version_*/metrics.csv")
    (row,) = [r for r in csv.DictReader(metrics.open()) if r.get("val/accuracy")]
    accuracy = float(row["val/accuracy"])
    assert math.isclose(accuracy, 1 / 5, abs_tol=1e-6), f"{accuracy}: a repeated first question gives 2 of 6"
