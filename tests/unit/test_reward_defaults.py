"""A reward named in YAML or on the command line gets its own class's defaults, not those of the
stage's default reward (jsonargparse carries a default instance's arguments over to a new class:
AnswerReward's partial 0.1 would reach a ChoiceReward, whose default, like the paper's, is 0.0)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from reft_lightning.cli import main
from reft_lightning.stages.sft import SFTModule
from tests.conftest import REPO


def _printed_reward(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *args, "--print_config"])
    assert exit_info.value.code == 0
    return yaml.safe_load(capsys.readouterr().out)["model"]["init_args"]["reward"]


def test_a_choice_reward_keeps_its_own_partial_score(capsys: pytest.CaptureFixture[str]) -> None:
    mathqa = _printed_reward(capsys, f"--config={REPO / 'configs' / 'reft_mathqa_ncot.yaml'}")
    assert mathqa["class_path"].endswith("ChoiceReward") and mathqa["init_args"]["partial"] == 0.0
    demo = f"--config={REPO / 'configs' / 'demo' / 'reft_synthetic.yaml'}"
    switched = _printed_reward(capsys, demo, "--model.init_args.reward=reft_lightning.rewards.ChoiceReward")
    assert switched["init_args"]["partial"] == 0.0
    explicit = _printed_reward(capsys, demo, "--model.init_args.reward=reft_lightning.rewards.ChoiceReward",
                               "--model.init_args.reward.init_args.partial=0.1")  # fmt: skip
    assert explicit["init_args"]["partial"] == 0.1


def test_the_default_reward_is_printed_and_built(
    capsys: pytest.CaptureFixture[str], tiny_model_dir: Path
) -> None:
    default = _printed_reward(capsys, f"--config={REPO / 'configs' / 'demo' / 'sft_synthetic.yaml'}")
    assert (
        default["class_path"] == "reft_lightning.rewards.AnswerReward"
        and default["init_args"]["partial"] == 0.1
    )
    assert type(SFTModule(model=str(tiny_model_dir)).reward).__name__ == "AnswerReward"
