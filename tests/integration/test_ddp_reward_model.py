"""Reward-model evaluation on two processes (DDP, gloo) gives the metrics of one process: each
question (with all its samples) is reranked on exactly one process, and the means are reduced."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from tests.conftest import REPO
from tests.integration.cli_process import run_reft_ok
from tests.integration.test_reward_model import _prediction_file

pytestmark = pytest.mark.slow  # several processes each: `make test` runs these after the rest

METRICS = ("val/rerank", "val/rerank@1", "val/rerank@4", "val/oracle", "val/sample_accuracy", "val/loss")


def _validate(model: Path, val: Path, run: Path, devices: int) -> dict[str, float]:
    run_reft_ok(
        "validate",
        f"--config={REPO / 'configs' / 'demo' / 'reward_model_synthetic.yaml'}",
        f"--trainer.default_root_dir={run}", f"--trainer.devices={devices}",
        f"--trainer.strategy={'ddp' if devices > 1 else 'auto'}", "--trainer.enable_progress_bar=false",
        f"--model.init_args.model={model}", "--model.init_args.rerank_k=[1, 4]",
        f"--data.init_args.train_predictions={val}", f"--data.init_args.val_predictions={val}",
        "--data.init_args.eval_batch_size=2",
    )  # fmt: skip
    (metrics,) = run.glob("csv/version_*/metrics.csv")
    (row,) = [r for r in csv.DictReader(metrics.open()) if r.get("val/rerank")]
    return {name: float(row[name]) for name in METRICS}


def test_reranking_on_two_processes_equals_one(tiny_model_dir: Path, tmp_path: Path) -> None:
    classifier = tmp_path / "classifier"  # one saved head, so both runs score with the same weights
    torch.manual_seed(0)  # the new head's initialisation: a fixed draw whose reranking is mixed
    AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=2).save_pretrained(
        classifier
    )
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(classifier)
    val = _prediction_file(tmp_path / "val.jsonl", "val", 7, seed=2, varying=True)  # 7: uneven shards
    one = _validate(classifier, val, tmp_path / "one", devices=1)
    two = _validate(classifier, val, tmp_path / "two", devices=2)
    for name in METRICS:
        assert abs(one[name] - two[name]) < 1e-5, (name, one[name], two[name])
    assert 0 < one["val/rerank"] < 1 and 0 < one["val/sample_accuracy"] < 1, "the check needs mixed outcomes"
