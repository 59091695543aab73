"""The user-written reward of docs/rewards.md, loaded verbatim from the page through jsonargparse."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from jsonargparse import ArgumentParser

from reft_lightning.data.example import MathExample
from reft_lightning.rewards import AnswerReward, Reward, WeightedSum

DOC = Path(__file__).resolve().parents[2] / "docs" / "rewards.md"
EXAMPLE = MathExample(id="t_0", question="q", answer="7")


def _block(name: str) -> str:
    match = re.search(rf"<!-- example: {re.escape(name)} -->\n```\w+\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert match, f"docs/rewards.md lost the {name} example"
    return match.group(1)


def _load(yaml_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Reward:
    (tmp_path / "my_rewards.py").write_text(_block("my_rewards.py"))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_rewards", raising=False)
    parser = ArgumentParser()
    parser.add_argument("--reward", type=Reward)
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes  # renamed in 4.49
    config = instantiate(parser.parse_string(_block(yaml_name)))
    return config.reward


def test_the_documented_reward_loads_from_three_yaml_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert len(_block("reward.yaml").strip().splitlines()) == 3
    reward = _load("reward.yaml", tmp_path, monkeypatch)
    assert type(reward).__name__ == "LengthPenalty" and isinstance(reward, Reward)
    output = reward(["x" * 300, "x" * 301, ""], [EXAMPLE] * 3)
    assert output.scores == [0.0, -0.2, 0.0]
    assert output.answers == [None] * 3 and output.correct == [False] * 3


def test_the_documented_combination_adds_the_penalty_to_the_answer_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reward = _load("combined.yaml", tmp_path, monkeypatch)
    assert isinstance(reward, WeightedSum) and isinstance(reward.rewards[0], AnswerReward)
    long_correct = "y" * 400 + "\nTherefore, the answer is: 7"
    output = reward(
        ["Therefore, the answer is: 7", long_correct, "Therefore, the answer is: 8"], [EXAMPLE] * 3
    )
    assert output.scores == pytest.approx([1.0, 1.0 - 0.5, 0.1], abs=1e-12)
    assert output.correct == [True, True, False]
