"""Estimators in the ReFT stage: a critic only when the estimator needs one, so every trainable
parameter gets a gradient (what DDP requires), and a registered estimator trains by name."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

from reft_lightning.data.example import MathExample
from reft_lightning.models.loading import load_causal_lm, load_tokenizer
from reft_lightning.rewards.base import Reward, RewardOutput
from reft_lightning.rl.advantages import broadcast_to_tokens
from reft_lightning.rl.estimators import (
    ADVANTAGE_ESTIMATORS,
    AdvantageInputs,
    register_advantage,
    sequence_rewards,
)
from reft_lightning.stages.ppo_args import PPOArgs
from reft_lightning.stages.reft import ReFTModule
from tests.integration.test_reft_levers import _fit


class LengthReward(Reward):
    """Score = completion length in characters / 100: samples of one question differ, so groups teach."""

    def __call__(self, completions: Sequence[str], examples: Sequence[MathExample]) -> RewardOutput:
        n = len(completions)
        return RewardOutput(
            scores=[len(c) / 100 for c in completions], answers=[None] * n, correct=[False] * n
        )


def _parameters_without_gradient(module: ReFTModule) -> list[str]:
    trainable = {id(p) for p in module.trainable_parameters()}
    return [name for name, p in module.named_parameters() if id(p) in trainable and p.grad is None]


@pytest.mark.parametrize("advantage", ["grpo", "rloo"])
def test_critic_free_estimators_build_no_value_head(
    tiny_model_dir: Path, tmp_path: Path, advantage: str
) -> None:
    ppo = PPOArgs(advantage=advantage, num_samples=2)
    module, _, _, initial = _fit(tiny_model_dir, tmp_path, ppo, 2, reward=LengthReward())
    assert module.value_head is None and module.value_model is None
    assert not any(name.startswith("value_head.") for name in module.state_dict())
    assert _parameters_without_gradient(module) == []
    changed = [n for n, v in module.model.state_dict().items() if not torch.equal(v, initial["policy"][n])]
    assert changed, "the policy learned"


def test_gae_keeps_its_value_head_and_every_parameter_gets_a_gradient(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    module, _, _, _ = _fit(tiny_model_dir, tmp_path, PPOArgs(), 2)
    assert module.value_head is not None
    assert _parameters_without_gradient(module) == []


def test_value_model_with_a_critic_free_estimator_is_refused(tiny_model_dir: Path) -> None:
    with pytest.raises(ValueError, match="value_model is set, but advantage='grpo' uses no critic"):
        ReFTModule(
            model=str(tiny_model_dir),
            value_model=str(tiny_model_dir),
            ppo=PPOArgs(advantage="grpo", num_samples=2),
        )


def test_a_registered_estimator_trains_by_name(tiny_model_dir: Path, tmp_path: Path) -> None:
    calls: list[int] = []

    @register_advantage("test_reinforce_stage", needs_critic=False, needs_groups=False)
    def _reinforce(batch: AdvantageInputs) -> tuple[torch.Tensor, None]:
        calls.append(batch.mask.shape[0])
        return broadcast_to_tokens(sequence_rewards(batch), batch.mask), None

    try:
        module, _, _, _ = _fit(tiny_model_dir, tmp_path, PPOArgs(advantage="test_reinforce_stage"), 2)
    finally:
        del ADVANTAGE_ESTIMATORS["test_reinforce_stage"]
    assert module.value_head is None and len(calls) == 2


def test_an_untied_value_model_head_is_frozen(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A Llama-style untied LM head on the separate value model is not trained: no parameter lacks a grad."""
    model = load_causal_lm(str(tiny_model_dir))
    model.config.tie_word_embeddings = False
    model.lm_head.weight = torch.nn.Parameter(model.lm_head.weight.detach().clone())
    model.save_pretrained(tmp_path / "untied")
    load_tokenizer(str(tiny_model_dir)).save_pretrained(tmp_path / "untied")
    module, _, _, _ = _fit(
        tiny_model_dir, tmp_path / "run", PPOArgs(), 2, value_model=str(tmp_path / "untied")
    )
    assert module.value_model is not None
    assert module.value_model.lm_head.weight is not module.value_model.get_input_embeddings().weight
    assert not module.value_model.lm_head.weight.requires_grad
    assert _parameters_without_gradient(module) == []
