"""SFT and ReFT under FSDP2 (Lightning's ModelParallelStrategy, ``fully_shard`` per block) on two
CPU processes (gloo): each takes the steps of one process with the same global batch, saves
sharded checkpoints that resume exactly after every rank is killed, and exports an HF model that
plain transformers loads and generates with."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from reft_lightning.checkpoints import is_intact
from reft_lightning.models.loading import load_causal_lm, load_tokenizer
from tests.conftest import REPO
from tests.integration.cli_process import run_reft, run_reft_ok

pytestmark = pytest.mark.slow  # several processes each: `make test` runs these after the rest

FSDP2 = {
    "class_path": "lightning.pytorch.strategies.ModelParallelStrategy",
    "init_args": {"data_parallel_size": 2, "tensor_parallel_size": 1},
}
LAST = {"class_path": "reft_lightning.LastCheckpoint", "init_args": {"every_n_train_batches": 2}}
EXPORT = {"class_path": "reft_lightning.HFExport", "init_args": {"export_best": False}}


def _config(
    tmp_path: Path,
    model_dir: Path,
    name: str,
    devices: int,
    callbacks: list[dict],
    stage: str = "sft",
    engine: dict | None = None,
) -> Path:
    config = yaml.safe_load((REPO / "configs" / "demo" / f"{stage}_synthetic.yaml").read_text())
    config["trainer"].update(
        devices=devices, strategy=FSDP2 if devices > 1 else "auto", max_steps=6, log_every_n_steps=1,
        enable_progress_bar=False, limit_val_batches=0, num_sanity_val_steps=0, callbacks=callbacks,
    )  # fmt: skip
    init = config["model"]["init_args"]
    init["model"] = str(model_dir)
    if stage == "reft":  # greedy rollouts: the samples do not depend on the processes' random streams
        config["trainer"]["val_check_interval"] = None
        init.update(
            rollout={"max_new_tokens": 12, "do_sample": False}, value_dropout=0.0, value_init="default"
        )
        init["value_model"] = str(model_dir)
        if engine is not None:
            init["engine"] = engine
    config["data"]["init_args"].update(num_train=64, num_val=4, num_test=4, batch_size=8 // devices)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _fit(config: Path, run: Path, *extra: str) -> None:
    run_reft_ok("fit", f"--config={config}", f"--trainer.default_root_dir={run}", *extra)


def _final(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "hf" / "final" / "model.safetensors")


@pytest.fixture(scope="module")
def sharded_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fsdp2")
    _fit(_config(folder, tiny_model_dir, "fsdp2", 2, [LAST, EXPORT]), folder / "fsdp2")
    return folder / "fsdp2"


def test_fsdp2_takes_the_steps_of_one_process(
    sharded_run: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    _fit(_config(tmp_path, tiny_model_dir, "single", 1, [EXPORT]), tmp_path / "single")
    single, sharded = _final(tmp_path / "single"), _final(sharded_run)
    initial = load_file(tiny_model_dir / "model.safetensors")
    assert sharded.keys() == single.keys()
    change = max(float((single[k] - initial[k]).abs().max()) for k in initial)
    worst = max(float((sharded[k] - weight).abs().max()) for k, weight in single.items())
    assert change > 0 and worst < 0.02 * change, f"largest difference {worst:.3g}, change {change:.3g}"


def test_a_sharded_checkpoint_resumes_exactly_after_every_rank_is_killed(
    sharded_run: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    kill = {"class_path": "tests.integration.killer.KillAfterStep", "init_args": {"step": 5}}
    killed = tmp_path / "killed"
    config = _config(tmp_path, tiny_model_dir, "killed", 2, [LAST, EXPORT, kill])
    result = run_reft("fit", f"--config={config}", f"--trainer.default_root_dir={killed}", threads=1)
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
    last = killed / "checkpoints" / "last.ckpt"
    assert last.is_dir() and is_intact(last), "a sharded checkpoint is a directory of shards"
    assert list((killed / "checkpoints").iterdir()) == [last], "no partial save left beside it"

    _fit(_config(tmp_path, tiny_model_dir, "resumed", 2, [LAST, EXPORT]), killed, "--ckpt_path=last")
    expected, actual = _final(sharded_run), _final(killed)
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=0, atol=0, msg=name)


def test_the_export_of_a_sharded_run_loads_and_generates_in_plain_transformers(sharded_run: Path) -> None:
    model = load_causal_lm(str(sharded_run / "hf" / "final"))
    tokenizer = load_tokenizer(str(sharded_run / "hf" / "final"))
    ids = tokenizer("Question: Mia has 3 shells.", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=5, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert out.shape[1] == ids["input_ids"].shape[1] + 5 or out[0, -1] == tokenizer.eos_token_id


@pytest.fixture(scope="module")
def single_process_reft_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("reft_single")
    _fit(_config(folder, tiny_model_dir, "reft_1", 1, [EXPORT], stage="reft"), folder / "run")
    return folder / "run"


@pytest.mark.parametrize("engine", [{"name": "hf"}, {"name": "static", "compile": False}])
def test_reft_with_a_value_model_under_fsdp2_takes_the_steps_of_one_process(
    single_process_reft_run: Path, tiny_model_dir: Path, tmp_path: Path, engine: dict
) -> None:
    """Policy, frozen reference, value model and value head all sharded; rollouts by the sharded
    policy, through ``generate`` or the static-cache loop (both greedy: the one process's tokens)."""
    config = _config(tmp_path, tiny_model_dir, "reft_2", 2, [EXPORT], stage="reft", engine=engine)
    _fit(config, tmp_path / "2")
    single, sharded = _final(single_process_reft_run), _final(tmp_path / "2")
    initial = load_file(tiny_model_dir / "model.safetensors")
    change = max(float((single[k] - initial[k]).abs().max()) for k in initial)
    worst = max(float((sharded[k] - weight).abs().max()) for k, weight in single.items())
    assert change > 0 and worst < 0.02 * change, f"largest difference {worst:.3g}, change {change:.3g}"


def test_reft_resumes_exactly_from_a_sharded_checkpoint(tiny_model_dir: Path, tmp_path: Path) -> None:
    """The frozen reference is kept in sharded checkpoints (their loader fills every key in place)."""
    kill = {"class_path": "tests.integration.killer.KillAfterStep", "init_args": {"step": 6}}
    configs = {
        name: _config(tmp_path, tiny_model_dir, name, 2, callbacks, stage="reft")
        for name, callbacks in (("straight", [LAST, EXPORT]), ("killed", [LAST, EXPORT, kill]))
    }
    for config in configs.values():
        loaded = yaml.safe_load(config.read_text())
        loaded["trainer"]["max_steps"] = 8  # 4 iterations of 2 PPO epochs; last.ckpt every 2 iterations
        config.write_text(yaml.safe_dump(loaded))
    _fit(configs["straight"], tmp_path / "straight")
    killed = tmp_path / "killed"
    result = run_reft(
        "fit", f"--config={configs['killed']}", f"--trainer.default_root_dir={killed}", threads=1
    )
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
    _fit(configs["straight"], killed, "--ckpt_path=last")
    resumed_log = sorted(killed.glob("csv/version_*/metrics.csv"))[-1].read_text().splitlines()
    assert resumed_log[1].split(",")[1] == "2", "the resumed run starts at iteration 3, not over"
    expected, actual = _final(tmp_path / "straight"), _final(killed)
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=0, atol=0, msg=name)


def test_reft_export_of_a_sharded_last_checkpoint_matches_the_runs_final_export(
    sharded_run: Path, tmp_path: Path
) -> None:
    """``reft export`` gathers FSDP2's sharded ``last.ckpt/`` (saved at the end of the run, after the
    last step) into the same weights that ``HFExport`` wrote to ``hf/final``."""
    last = sharded_run / "checkpoints" / "last.ckpt"
    assert last.is_dir()
    result = run_reft("export", str(last), str(tmp_path / "hf"), threads=1)
    assert result.returncode == 0, result.stderr[-3000:]
    exported = AutoModelForCausalLM.from_pretrained(tmp_path / "hf").state_dict()
    for name, weight in _final(sharded_run).items():
        torch.testing.assert_close(exported[name], weight, rtol=0, atol=0, msg=name)
    assert (
        AutoTokenizer.from_pretrained(tmp_path / "hf").get_vocab()
        == load_tokenizer(str(sharded_run / "hf" / "final")).get_vocab()
    )


def test_reft_with_lora_under_fsdp2_takes_the_steps_of_one_process(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Adapters sharded with their blocks, the reference as the base with adapters disabled, and the
    merged export gathered from the shards."""
    for devices in (1, 2):
        config = _config(tmp_path, tiny_model_dir, f"lora_{devices}", devices, [EXPORT], stage="reft")
        loaded = yaml.safe_load(config.read_text())
        init = loaded["model"]["init_args"]
        del init["value_model"]
        init.update(
            lora={"r": 4, "alpha": 8.0, "dropout": 0.0},
            optimizer={"lr": 1e-3, "schedule": "constant", "warmup_ratio": 0.0},
        )
        config.write_text(yaml.safe_dump(loaded))
        _fit(config, tmp_path / str(devices))
    single, sharded = _final(tmp_path / "1"), _final(tmp_path / "2")
    initial = load_file(tiny_model_dir / "model.safetensors")
    assert single.keys() == sharded.keys() and not any("lora" in k for k in single)
    change = max(float((single[k] - initial[k]).abs().max()) for k in initial)
    worst = max(float((sharded[k] - weight).abs().max()) for k, weight in single.items())
    assert change > 0 and worst < 0.02 * change, f"largest difference {worst:.3g}, change {change:.3g}"
