"""ReFT under DDP with two CPU processes (gloo): GAE with the shared value head, GAE with a separate
value model, and GRPO without a critic all train (DDP finds no parameter without a gradient), and
the logged per-iteration metrics are means over both processes, so every rank logs the same values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.integration.cli_process import run_reft_ok

pytestmark = pytest.mark.slow  # several processes each: `make test` runs these after the rest


def _config(
    tmp_path: Path, model_dir: Path, probe: Path, ppo: dict[str, object], separate_value_model: bool
) -> Path:
    config = yaml.safe_load((REPO / "configs" / "demo" / "reft_synthetic.yaml").read_text())
    config["trainer"].update(
        devices=2, strategy="ddp", max_epochs=1, limit_train_batches=3, limit_val_batches=0,
        num_sanity_val_steps=0, enable_progress_bar=False, val_check_interval=None,
    )  # fmt: skip
    config["trainer"]["callbacks"] = [
        {
            "class_path": "tests.integration.probes.RecordMetrics",
            "init_args": {"out": str(probe), "names": ["train/entropy", "train/response_length"]},
        },
    ]
    init = config["model"]["init_args"]
    init.update(model=str(model_dir), rollout={"max_new_tokens": 8, "temperature": 1.0})
    init["ppo"] = ppo
    if separate_value_model:
        init["value_model"] = str(model_dir)
    config["data"]["init_args"].update(num_train=24, num_val=4, num_test=4, batch_size=2, eval_batch_size=4)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize(
    ("ppo", "separate_value_model"),
    [({}, False), ({}, True), ({"advantage": "grpo", "num_samples": 2}, False)],
    ids=["gae_shared_head", "gae_value_model", "grpo"],
)
def test_reft_trains_under_ddp_and_logs_means_over_processes(
    tiny_model_dir: Path, tmp_path: Path, ppo: dict[str, object], separate_value_model: bool
) -> None:
    probe = tmp_path / "probe"
    config = _config(tmp_path, tiny_model_dir, probe, ppo, separate_value_model)
    run_reft_ok("fit", f"--config={config}", f"--trainer.default_root_dir={tmp_path / 'run'}")
    rank0, rank1 = (json.loads((probe / f"rank{r}.json").read_text()) for r in (0, 1))
    assert set(rank0) == set(rank1) == {"1", "2", "3"}
    assert rank0 == rank1, "each rank logged its own means, not the mean over processes"
