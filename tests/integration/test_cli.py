"""The `reft` CLI end to end on a tiny offline model: the paper's GSM8K config, few steps."""

from __future__ import annotations

import csv
import importlib
import inspect
import os
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from jsonargparse import Namespace

from reft_lightning.cli import _resolve_last, main
from reft_lightning.models.loading import load_causal_lm
from tests.conftest import REPO

CPU_OVERRIDES = [
    "--trainer.accelerator=cpu",
    "--trainer.devices=1",
    "--trainer.strategy=auto",
    "--trainer.precision=32-true",
    "--trainer.enable_progress_bar=false",
]


def _metrics(run_dir: Path) -> list[dict[str, str]]:
    (metrics_file,) = run_dir.glob("csv/version_*/metrics.csv")
    with metrics_file.open() as handle:
        return list(csv.DictReader(handle))


def test_sft_gsm8k_config_trains_validates_and_exports(
    tiny_model_dir: Path, gsm8k_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    main(
        [
            "fit",
            f"--config={REPO / 'configs' / 'sft_gsm8k_ncot.yaml'}",
            *CPU_OVERRIDES,
            f"--trainer.default_root_dir={run_dir}",
            "--trainer.max_steps=3",
            "--trainer.log_every_n_steps=1",
            "--trainer.val_check_interval=3",
            f"--model.init_args.model={tiny_model_dir}",
            "--model.init_args.eval_generation.max_new_tokens=8",
            f"--data.init_args.train_file={gsm8k_dir / 'train.jsonl'}",
            f"--data.init_args.test_file={gsm8k_dir / 'test.jsonl'}",
            "--data.init_args.max_train_examples=64",
            "--data.init_args.val_size=8",
            "--data.init_args.batch_size=2",
            "--data.init_args.eval_batch_size=4",
            "--data.init_args.max_length=256",
        ]
    )
    rows = _metrics(run_dir)
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    accuracies = [float(r["val/accuracy"]) for r in rows if r.get("val/accuracy")]
    assert losses and all(loss == loss and loss > 0 for loss in losses)
    assert len(accuracies) == 1 and 0.0 <= accuracies[0] <= 1.0
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert list(run_dir.glob("tensorboard/version_*/config.yaml")), (
        "the run's config is saved beside its logs"
    )
    exported = load_causal_lm(str(run_dir / "hf" / "final"))
    assert exported.config.n_layer == 2
    printed = capsys.readouterr().out.splitlines()  # a piped log keeps plain lines (RunReport)
    (validation,) = [line for line in printed if line.startswith("validation  epoch 0  step 3:")]
    assert f"accuracy {100 * accuracies[-1]:.1f}%" in validation and "  loss " in validation
    assert f"run finished: {run_dir}" in printed
    assert f"  Hugging Face export: {run_dir / 'hf' / 'final'}" in printed
    assert f"  last checkpoint: {run_dir / 'checkpoints' / 'last.ckpt'}" in printed


SHIPPED_CONFIGS = sorted((REPO / "configs").glob("*.yaml")) + sorted(
    (REPO / "configs" / "demo").glob("*.yaml")
)


def _printed_model(config: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", f"--config={config}", "--print_config"])
    assert exit_info.value.code in (0, None), config
    return yaml.safe_load(capsys.readouterr().out)["model"]


def test_print_config_resolves_every_shipped_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert len(SHIPPED_CONFIGS) >= 21
    for config in SHIPPED_CONFIGS:
        assert _printed_model(config, capsys)["class_path"].startswith("reft_lightning."), config


def test_printed_config_shows_every_stage_default(capsys: pytest.CaptureFixture[str]) -> None:
    """Every stage argument is printed, and none is null where its signature has a default."""
    for config in SHIPPED_CONFIGS:
        printed = _printed_model(config, capsys)
        module_name, class_name = printed["class_path"].rsplit(".", 1)
        stage = getattr(importlib.import_module(module_name), class_name)
        parameters = list(inspect.signature(stage.__init__).parameters.values())[1:]
        init_args = printed["init_args"]
        assert set(init_args) == {p.name for p in parameters}, config
        for parameter in parameters:
            if parameter.default not in (None, inspect.Parameter.empty):
                assert init_args[parameter.name] is not None, f"{config}: {parameter.name} printed as null"
        if class_name == "ReFTModule":  # the spec's ReFT values, or the config's own, never a placeholder
            assert {"kl_coef", "clip_range", "vf_coef", "lam"} <= set(init_args["ppo"]), config
            assert init_args["optimizer"]["lr"] > 0 and init_args["rollout"]["do_sample"], config
            assert init_args["reward"]["class_path"].startswith("reft_lightning.rewards."), config


def test_reft_optimizer_default_is_the_spec_value(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A ReFT config without ``optimizer`` prints the spec's lr 3e-7, constant (not SFTModule's default)."""
    config = yaml.safe_load((REPO / "configs" / "reft_gsm8k.yaml").read_text())
    del config["model"]["init_args"]["optimizer"]
    (tmp_path / "reft.yaml").write_text(yaml.safe_dump(config))
    printed = _printed_model(tmp_path / "reft.yaml", capsys)["init_args"]["optimizer"]
    assert (printed["lr"], printed["schedule"], printed["warmup_ratio"]) == (3e-7, "constant", 0.0)


def test_bad_config_value_names_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "fit",
                f"--config={REPO / 'configs' / 'sft_gsm8k_ncot.yaml'}",
                "--data.init_args.cot_format=latex",
            ]
        )
    assert exit_info.value.code != 0
    assert "cot_format" in capsys.readouterr().err


def test_pcot_validation_runs_programs_in_the_sandbox(tiny_model_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "pcot"
    main(
        [
            "validate",
            f"--config={REPO / 'configs' / 'demo' / 'sft_synthetic.yaml'}",
            "--trainer.enable_progress_bar=false",
            f"--trainer.default_root_dir={run_dir}",
            f"--model.init_args.model={tiny_model_dir}",
            "--model.init_args.eval_generation.max_new_tokens=16",
            "--model.init_args.reward=reft_lightning.rewards.ProgramReward",
            "--model.init_args.reward.timeout_s=2.0",
            "--data.init_args.cot_format=pcot",
            "--data.init_args.num_train=16",
            "--data.init_args.num_val=6",
            "--data.init_args.num_test=4",
        ]
    )
    (row,) = _metrics(run_dir)
    errors, extracted = float(row["val/reward_error_fraction"]), float(row["val/extracted"])
    assert 0.0 <= errors <= 1.0 and row["val/accuracy"] != ""
    assert extracted <= 1.0 - errors + 1e-6, "an answer needs a program that returned a value"


def test_resume_with_nothing_to_resume_fails_before_training(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"--ckpt_path last: no intact checkpoint"):
        main(
            [
                "fit",
                f"--config={REPO / 'configs' / 'demo' / 'sft_synthetic.yaml'}",
                f"--trainer.default_root_dir={tmp_path / 'empty'}",
                "--ckpt_path=last",
            ]
        )


def test_no_two_shipped_configs_differ_only_in_run_paths() -> None:
    """Each shipped YAML is a setting of its own, not a copy under another run directory."""

    def setting(config: Path) -> str:
        loaded = yaml.safe_load(config.read_text())
        loaded.get("trainer", {}).pop("default_root_dir", None)
        loaded.get("model", {}).get("init_args", {}).pop("model", None)
        return yaml.safe_dump(loaded, sort_keys=True)

    by_setting: dict[str, list[str]] = {}
    for config in SHIPPED_CONFIGS:
        by_setting.setdefault(setting(config), []).append(config.name)
    assert [names for names in by_setting.values() if len(names) > 1] == []


@pytest.mark.parametrize(
    ("launch", "expected"),
    [("cpu.yaml", ("cpu", 1, "auto", "32-true")), ("ddp_8gpu.yaml", ("gpu", 8, "ddp", "bf16-mixed"))],
)
def test_a_launch_config_after_a_paper_config_sets_only_the_launch(
    launch: str, expected: tuple[str, int, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    paper = REPO / "configs" / "reft_gsm8k.yaml"
    with pytest.raises(SystemExit):
        main(
            ["fit", f"--config={paper}", f"--config={REPO / 'configs' / 'launch' / launch}", "--print_config"]
        )
    printed = yaml.safe_load(capsys.readouterr().out)
    trainer = printed["trainer"]
    assert (trainer["accelerator"], trainer["devices"], trainer["strategy"], trainer["precision"]) == expected
    alone = yaml.safe_load(paper.read_text())
    assert trainer["max_epochs"] == alone["trainer"]["max_epochs"]
    assert printed["model"]["init_args"]["model"] == alone["model"]["init_args"]["model"]


def test_fit_keeps_last_current_and_writes_checkpoints_atomically(capsys: pytest.CaptureFixture[str]) -> None:
    """The printed config is the real one: loggers, checkpoint folders, LastCheckpoint, atomic writer."""
    config = REPO / "configs" / "demo" / "sft_synthetic.yaml"
    with pytest.raises(SystemExit):
        main(["fit", f"--config={config}", "--trainer.default_root_dir=runs/x", "--print_config"])
    trainer = yaml.safe_load(capsys.readouterr().out)["trainer"]
    (last,) = [c for c in trainer["callbacks"] if c["class_path"].endswith("LastCheckpoint")]
    assert last["init_args"] == {"dirpath": str(Path("runs/x/checkpoints")), "every_n_train_batches": 100}
    assert [p["class_path"] for p in trainer["plugins"]] == ["reft_lightning.checkpoints.AtomicCheckpointIO"]
    assert [logger["init_args"]["save_dir"] for logger in trainer["logger"]] == ["runs/x", "runs/x"]
    (best,) = [c for c in trainer["callbacks"] if c["class_path"].endswith("ModelCheckpoint")]
    assert best["init_args"]["dirpath"] == str(Path("runs/x/checkpoints"))


def test_model_checkpoint_save_last_is_refused_naming_the_key(tmp_path: Path) -> None:
    config = yaml.safe_load((REPO / "configs" / "demo" / "sft_synthetic.yaml").read_text())
    config["trainer"]["callbacks"][0]["init_args"]["save_last"] = True
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(SystemExit, match=r"trainer\.callbacks\[0\]\.init_args\.save_last: remove it"):
        main(["fit", f"--config={path}", f"--trainer.default_root_dir={tmp_path}"])


def test_reft_names_its_best_checkpoint_by_iteration(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Two PPO epochs make 2 optimizer steps per iteration: the name says iterations, not steps."""
    main(
        [
            "fit",
            f"--config={REPO / 'configs' / 'demo' / 'reft_synthetic.yaml'}",
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.enable_progress_bar=false",
            "--trainer.limit_train_batches=2",
            "--trainer.val_check_interval=2",
            "--trainer.limit_val_batches=1",
            "--trainer.num_sanity_val_steps=0",
            f"--model.init_args.model={tiny_model_dir}",
            "--model.init_args.rollout.max_new_tokens=8",
            "--model.init_args.eval_generation.max_new_tokens=8",
            "--data.init_args.num_train=8",
            "--data.init_args.num_val=4",
            "--data.init_args.num_test=4",
            "--data.init_args.batch_size=4",
            "--data.init_args.eval_batch_size=4",
        ]
    )
    names = sorted(path.name for path in (tmp_path / "checkpoints").iterdir())
    assert names == ["best-iteration=2.ckpt", "last.ckpt"]


def test_ckpt_path_last_looks_in_the_run_folder_and_every_checkpoint_folder(tmp_path: Path) -> None:
    """``reft test --ckpt_path last`` of a run with no ModelCheckpoint still finds its last.ckpt."""
    run, other = tmp_path / "run", tmp_path / "elsewhere"
    (run / "checkpoints").mkdir(parents=True)
    torch.save({"step": 1}, run / "checkpoints" / "last.ckpt")
    trainer = Namespace(default_root_dir=str(run))
    assert _resolve_last(trainer, []) == str(run / "checkpoints" / "last.ckpt")
    other.mkdir()
    torch.save({"step": 2}, other / "last.ckpt")
    os.utime(other / "last.ckpt", (time.time() + 10, time.time() + 10))
    callback = Namespace(class_path="reft_lightning.LastCheckpoint", init_args=Namespace(dirpath=str(other)))
    assert _resolve_last(trainer, [callback]) == str(other / "last.ckpt"), "the newest of all folders"


def test_a_value_a_class_refuses_ends_the_command_with_its_message_alone(tmp_path: Path) -> None:
    """Not jsonargparse's traceback and dump of every value: the message that names the key."""
    with pytest.raises(SystemExit) as stopped:
        main(
            [
                "fit",
                f"--config={REPO / 'configs' / 'demo' / 'sft_synthetic.yaml'}",
                f"--trainer.default_root_dir={tmp_path}",
                "--model.init_args.model=./no_such_model",
            ]
        )
    message = str(stopped.value.code)
    assert message.startswith("reft fit: FileNotFoundError: model.init_args.model: model path not found: ")
    assert "Given value" not in message and "Namespace(" not in message
