"""The PPO stability levers of PPOArgs: critic warm-up, skipping uniform groups, early stop on KL.

Integration tests run a few PPO iterations of the tiny offline model; the loss-scaling test of
``skip_uniform_groups`` drives ``optimise_rollout`` with a stand-in module whose gradients are
known in closed form.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lightning as L
import pytest
import torch

from reft_lightning.data.datasets import SyntheticDataModule
from reft_lightning.data.example import MathExample
from reft_lightning.generation import SamplingArgs
from reft_lightning.rewards.base import Reward, RewardOutput
from reft_lightning.rewards.correctness import AnswerReward
from reft_lightning.stages.numeric_guard import NonFiniteGuard
from reft_lightning.stages.optim import OptimizerArgs
from reft_lightning.stages.ppo_args import PPOArgs
from reft_lightning.stages.ppo_step import Rollout, optimise_rollout
from reft_lightning.stages.reft import ReFTModule

BATCH = 4  # questions per iteration


class ConstantReward(Reward):
    """Every completion gets the same score, so every group of samples is uniform."""

    def __call__(self, completions: Sequence[str], examples: Sequence[MathExample]) -> RewardOutput:
        n = len(completions)
        return RewardOutput(scores=[0.1] * n, answers=["0"] * n, correct=[False] * n)


class Snapshots(L.Callback):
    """After every PPO iteration: copies of policy, value head and value model, and the metrics."""

    def __init__(self) -> None:
        self.policy: list[dict[str, torch.Tensor]] = []
        self.value_head: list[dict[str, torch.Tensor]] = []
        self.value_model: list[dict[str, torch.Tensor]] = []
        self.metrics: list[dict[str, float]] = []
        self.policy_in_optimizer_state: list[int] = []

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        assert isinstance(pl_module, ReFTModule)
        self.policy.append(_clone(pl_module.model))
        if pl_module.value_head is not None:
            self.value_head.append(_clone(pl_module.value_head))
        if pl_module.value_model is not None:
            self.value_model.append(_clone(pl_module.value_model))
        self.metrics.append({k: float(v) for k, v in trainer.callback_metrics.items()})
        state = trainer.optimizers[0].state
        self.policy_in_optimizer_state.append(sum(p in state for p in pl_module.model.parameters()))


def _clone(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _fit(
    model_dir: Path,
    root: Path,
    ppo: PPOArgs,
    iterations: int,
    value_model: str | None = None,
    reward: Reward | None = None,
) -> tuple[ReFTModule, L.Trainer, Snapshots, dict[str, dict[str, torch.Tensor]]]:
    """Run ``iterations`` PPO iterations; returns module, trainer, snapshots and the initial weights."""
    L.seed_everything(0)
    module = ReFTModule(
        model=str(model_dir),
        value_model=value_model,
        ppo=ppo,
        rollout=SamplingArgs(max_new_tokens=12),
        optimizer=OptimizerArgs(lr=1e-3, schedule="constant", warmup_ratio=0.0),
        value_lr=1e-2,
        reward=reward or AnswerReward(),
    )
    module.configure_model()
    initial = {"policy": _clone(module.model)}
    if module.value_head is not None:
        initial["value_head"] = _clone(module.value_head)
    if module.value_model is not None:
        initial["value_model"] = _clone(module.value_model)
    snapshots = Snapshots()
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=1,
        limit_train_batches=iterations,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        logger=False,
        callbacks=[snapshots],
        default_root_dir=root,
    )
    data = SyntheticDataModule(
        tokenizer=str(model_dir),
        num_train=16,
        num_val=4,
        num_test=4,
        train_batches="prompts",
        batch_size=BATCH,
        eval_batch_size=4,
    )
    trainer.fit(module, data)
    assert module.iterations == iterations
    return module, trainer, snapshots, initial


# ---------------------------------------------------------------------------- configuration checks


def test_lever_defaults_are_the_spec() -> None:
    ppo = PPOArgs()
    assert (ppo.critic_warmup_iterations, ppo.skip_uniform_groups, ppo.target_kl) == (0, False, None)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"critic_warmup_iterations": 2, "advantage": "grpo", "num_samples": 2}, "advantage='grpo' has none"),
        ({"advantage": "ppo2"}, "unknown advantage estimator 'ppo2'; registered: gae, grpo, rloo"),
        ({"critic_warmup_iterations": -1}, ">= 0"),
        ({"skip_uniform_groups": True}, "num_samples >= 2"),
        ({"target_kl": 0.0}, "target_kl"),
        ({"target_kl": -0.1}, "target_kl"),
    ],
)
def test_invalid_lever_settings_raise(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PPOArgs(**kwargs)


def test_valid_lever_settings_are_accepted() -> None:
    assert PPOArgs(critic_warmup_iterations=3).critic_warmup_iterations == 3
    assert PPOArgs(skip_uniform_groups=True, num_samples=2).skip_uniform_groups
    grouped = PPOArgs(skip_uniform_groups=True, num_samples=4, advantage="grpo")
    assert (grouped.skip_uniform_groups, grouped.num_samples, grouped.advantage) == (True, 4, "grpo")
    assert PPOArgs(target_kl=0.02).target_kl == 0.02


# ---------------------------------------------------------------------------- critic warm-up


def test_critic_warmup_with_shared_head_trains_only_the_head(tiny_model_dir: Path, tmp_path: Path) -> None:
    warmup = 2
    _, _, snaps, initial = _fit(tiny_model_dir, tmp_path, PPOArgs(critic_warmup_iterations=warmup), 3)

    for i in range(warmup):  # the backbone is the policy: bit-identical, and AdamW never touched it
        assert _same(snaps.policy[i], initial["policy"]), f"policy changed in warm-up iteration {i + 1}"
        assert snaps.policy_in_optimizer_state[i] == 0
        assert snaps.metrics[i]["train/critic_warmup"] == 1.0
    assert not _same(snaps.value_head[0], initial["value_head"]), "the value head must learn in warm-up"
    assert not _same(snaps.policy[warmup], initial["policy"]), "the policy must learn after warm-up"
    assert snaps.policy_in_optimizer_state[warmup] > 0
    assert snaps.metrics[warmup]["train/critic_warmup"] == 0.0


def test_critic_warmup_with_separate_value_model_trains_it(tiny_model_dir: Path, tmp_path: Path) -> None:
    _, _, snaps, initial = _fit(
        tiny_model_dir, tmp_path, PPOArgs(critic_warmup_iterations=1), 2, value_model=str(tiny_model_dir)
    )

    assert _same(snaps.policy[0], initial["policy"])
    assert not _same(snaps.value_model[0], initial["value_model"]), "the value model must learn in warm-up"
    assert not _same(snaps.value_head[0], initial["value_head"])
    assert not _same(snaps.policy[1], initial["policy"]), "the policy must learn after warm-up"
    assert [m["train/critic_warmup"] for m in snaps.metrics] == [1.0, 0.0]


# ---------------------------------------------------------------------------- skip_uniform_groups


@pytest.mark.parametrize("skip", [True, False])
def test_uniform_groups_leave_the_policy_unchanged_only_when_skipped(
    tiny_model_dir: Path, tmp_path: Path, skip: bool
) -> None:
    # GAE with a (random) learned value: whitened advantages are nonzero even when every score is
    # equal, so without the filter the policy moves. A separate value model keeps the value loss,
    # which still uses every sequence, off the policy.
    ppo = PPOArgs(num_samples=2, skip_uniform_groups=skip)
    _, _, snaps, initial = _fit(
        tiny_model_dir, tmp_path, ppo, 1, value_model=str(tiny_model_dir), reward=ConstantReward()
    )

    assert _same(snaps.policy[0], initial["policy"]) == skip
    assert not _same(snaps.value_model[0], initial["value_model"]), "the value loss keeps every sequence"
    if skip:
        assert snaps.metrics[0]["train/kept_fraction"] == 0.0
    else:
        assert "train/kept_fraction" not in snaps.metrics[0]


class _StandIn:
    """What ``optimise_rollout`` needs of a ReFTModule: ``logp = base + theta`` per token, one value."""

    def __init__(self, base_logp: torch.Tensor, reduce_extra: float = 0.0, world_size: int = 1) -> None:
        self.base_logp = base_logp
        self.theta = torch.nn.Parameter(torch.zeros_like(base_logp))
        self.value = torch.nn.Parameter(torch.zeros(()))
        self.iterations = 0
        self.device = torch.device("cpu")
        self._optimizer = torch.optim.SGD([self.theta, self.value], lr=1.0)
        self._scheduler = torch.optim.lr_scheduler.LambdaLR(self._optimizer, lambda _: 1.0)
        # reduce(sum) adds ``reduce_extra``: the kept rows of the other processes
        reduce = lambda t, reduce_op: t + reduce_extra if reduce_op == "sum" else t  # noqa: E731
        self.trainer = SimpleNamespace(world_size=world_size, strategy=SimpleNamespace(reduce=reduce))
        self.grads: list[torch.Tensor] = []

    def optimizers(self) -> torch.optim.Optimizer:
        return self._optimizer

    def lr_schedulers(self) -> Any:
        return self._scheduler

    def policy_outputs(
        self, sequences: torch.Tensor, attention: torch.Tensor, response_ids: torch.Tensor, **_: Any
    ) -> tuple[torch.Tensor, torch.Tensor, None]:
        rows = sequences[:, 0]  # each sequence carries its row number
        logp = (self.base_logp[rows] + self.theta[rows])[:, : response_ids.shape[1]]  # columns in use
        return logp, self.value.expand_as(logp), None

    def manual_backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def policy_and_value_parameters(self) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
        return [self.theta], [self.value]

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [self.theta, self.value]

    def guard_optimizer_step(self, grad_norm: torch.Tensor, parameters: list[torch.nn.Parameter]) -> None:
        assert NonFiniteGuard().allow_step(float(grad_norm), parameters, step=0), "these rollouts are finite"


def _standin_rollout(keep: torch.Tensor | None) -> tuple[Rollout, torch.Tensor]:
    torch.manual_seed(0)
    n, r = 4, 3
    mask = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 1]])
    base = -torch.rand(n, r)
    rows = torch.arange(n).unsqueeze(1).expand(n, r)
    advantages = torch.randn(n, r) * mask
    rollout = Rollout(
        sequences=rows, attention=torch.ones(n, r), response_ids=rows, mask=mask, old_logp=base.clone(),
        old_values=torch.zeros(n, r), advantages=advantages, returns=torch.zeros(n, r), keep=keep,
    )  # fmt: skip
    return rollout, base


@pytest.mark.parametrize("micro_batch_size", [None, 1, 3])
def test_policy_loss_is_the_mean_over_kept_sequences(micro_batch_size: int | None) -> None:
    keep = torch.tensor([True, False, True, False])
    rollout, base = _standin_rollout(keep)
    module = _StandIn(base)
    ppo = PPOArgs(ppo_epochs=1, vf_coef=0.0, max_grad_norm=1e9, micro_batch_size=micro_batch_size)

    optimise_rollout(module, rollout, ppo, use_values=False)  # type: ignore[arg-type]

    # At ratio 1 the gradient of -A * ratio is -A; per kept sequence / its length / number kept (2).
    lengths = rollout.mask.sum(dim=1, keepdim=True)
    expected_grad = -rollout.advantages * rollout.mask / lengths / 2 * keep.unsqueeze(1)
    torch.testing.assert_close(-module.theta.detach(), expected_grad)  # SGD, lr 1: theta = -grad


def test_policy_loss_over_kept_sequences_counts_those_of_every_process() -> None:
    # Two processes; the other one kept 3 rows of its minibatch: 5 kept in all. DDP then averages
    # the two gradients, so this process's gradient is 2 * (its kept rows' share of the mean over 5).
    keep = torch.tensor([True, False, True, False])
    rollout, base = _standin_rollout(keep)
    module = _StandIn(base, reduce_extra=3.0, world_size=2)
    optimise_rollout(module, rollout, PPOArgs(ppo_epochs=1, max_grad_norm=1e9), use_values=False)  # type: ignore[arg-type]

    lengths = rollout.mask.sum(dim=1, keepdim=True)
    expected_grad = -rollout.advantages * rollout.mask / lengths * 2 / 5 * keep.unsqueeze(1)
    torch.testing.assert_close(-module.theta.detach(), expected_grad)


def test_no_kept_sequence_still_runs_backward_with_zero_policy_gradient() -> None:
    rollout, base = _standin_rollout(torch.zeros(4, dtype=torch.bool))
    module = _StandIn(base)
    stats = optimise_rollout(module, rollout, PPOArgs(ppo_epochs=1), use_values=False)  # type: ignore[arg-type]
    assert module.theta.grad is not None, "the backward pass must reach the policy (DDP all-reduce)"
    assert torch.equal(module.theta.detach(), torch.zeros_like(module.theta))
    assert stats["train/policy_loss"] == 0.0


# ---------------------------------------------------------------------------- target_kl


@pytest.mark.parametrize(("target_kl", "epochs_run"), [(1e-12, 1), (None, 4)])
def test_target_kl_stops_the_ppo_epochs(
    tiny_model_dir: Path, tmp_path: Path, target_kl: float | None, epochs_run: int
) -> None:
    # Two minibatches per epoch: the second one's approx_kl is > 0 after the first one's step.
    iterations, minibatches = 2, 2
    ppo = PPOArgs(ppo_epochs=4, minibatch_size=BATCH // minibatches, target_kl=target_kl)
    _, trainer, snaps, _ = _fit(tiny_model_dir, tmp_path, ppo, iterations)

    assert [m["train/ppo_epochs_run"] for m in snaps.metrics] == [float(epochs_run)] * iterations
    assert trainer.global_step == iterations * epochs_run * minibatches
