"""ReFTModule end to end on a tiny offline model: PPO iterations run, learn, and resume exactly."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from reft_lightning.data.datasets import SyntheticDataModule
from reft_lightning.generation import EngineArgs, SamplingArgs
from reft_lightning.stages.optim import OptimizerArgs
from reft_lightning.stages.ppo_args import PPOArgs
from reft_lightning.stages.reft import ReFTModule

ITERATIONS = 4
STEPS_PER_ITERATION = 2  # ppo_epochs=2, one minibatch per rollout batch


def _module(
    model_dir: Path,
    value_lr: float | None = None,
    old_logprobs: str = "recompute",
    engine: str = "hf",
    group_size: int | None = None,
) -> ReFTModule:
    """A ReFT module with its models built (as a Trainer would, before it trains); ``engine``'s
    static-cache loop runs eagerly; ``group_size``: ``ppo.micro_batch_size`` and ``forward_batch_size``."""
    module = ReFTModule(
        model=str(model_dir),
        value_lr=value_lr,
        old_logprobs=old_logprobs,
        engine=EngineArgs(name=engine, compile=False),
        ppo=PPOArgs(kl_coef=0.05, micro_batch_size=group_size, forward_batch_size=group_size),
        rollout=SamplingArgs(max_new_tokens=12),
        optimizer=OptimizerArgs(lr=1e-3, schedule="constant", warmup_ratio=0.0),
    )
    module.configure_model()
    return module


def _data(tiny_model_dir: Path) -> SyntheticDataModule:
    return SyntheticDataModule(
        tokenizer=str(tiny_model_dir),
        num_train=16,
        num_val=4,
        num_test=4,
        batch_size=4,
        eval_batch_size=4,  # the stage asks for prompts
    )


def _trainer(root: Path, callbacks: list[L.Callback] | None = None) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu",
        max_steps=ITERATIONS * STEPS_PER_ITERATION,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=CSVLogger(root, name="csv"),
        callbacks=callbacks or [],
        enable_checkpointing=bool(callbacks),
        default_root_dir=root,
        log_every_n_steps=1,
    )


def _clone(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_ppo_iterations_update_policy_and_value_but_not_reference(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    L.seed_everything(0)
    module = _module(tiny_model_dir, value_lr=1e-2)
    policy, reference, value = _clone(module.model), _clone(module.reference), _clone(module.value_head)
    trainer = _trainer(tmp_path)
    trainer.fit(module, _data(tiny_model_dir))

    policy_group, value_group = trainer.optimizers[0].param_groups
    assert (policy_group["lr"], value_group["lr"]) == (1e-3, 1e-2)
    assert len(value_group["params"]) == 2  # the value head's weight and bias

    assert module.iterations == ITERATIONS
    assert trainer.global_step == ITERATIONS * STEPS_PER_ITERATION  # optimizer steps, not iterations
    logged = trainer.logged_metrics
    for name in ("train/policy_loss", "train/value_loss", "train/kl", "train/entropy", "train/grad_norm"):
        assert math.isfinite(float(logged[name])), name
    assert 0.0 <= float(logged["train/score"]) <= 1.0
    assert any(not torch.equal(policy[k], v) for k, v in module.model.state_dict().items())
    assert any(not torch.equal(value[k], v) for k, v in module.value_head.state_dict().items())
    for name, tensor in module.reference.state_dict().items():
        assert torch.equal(reference[name], tensor), name
    assert all(not p.requires_grad for p in module.reference.parameters())


@pytest.mark.parametrize(
    ("old_logprobs", "engine", "group_size"),
    [
        ("recompute", "hf", None),
        ("sampling", "hf", None),
        ("sampling", "static", None),
        ("recompute", "hf", 3),
    ],
)
def test_resume_from_mid_run_checkpoint_reproduces_the_next_iterations(
    tiny_model_dir: Path, tmp_path: Path, old_logprobs: str, engine: str, group_size: int | None
) -> None:
    """Sampled rollouts: the static engine's uniforms come from the restored random state too.
    ``group_size`` 3: rollouts evaluated and optimised in groups of 3 and 1 by length."""
    L.seed_everything(0)
    straight = _module(tiny_model_dir, old_logprobs=old_logprobs, engine=engine, group_size=group_size)
    every = ModelCheckpoint(
        dirpath=tmp_path / "ckpt", every_n_train_steps=2 * STEPS_PER_ITERATION, save_top_k=-1
    )
    _trainer(tmp_path / "straight", [every]).fit(straight, _data(tiny_model_dir))
    middle = tmp_path / "ckpt" / f"epoch=0-step={2 * STEPS_PER_ITERATION}.ckpt"
    saved = torch.load(middle, map_location="cpu", weights_only=True)
    assert saved["reft_state"]["iterations"] == 2
    assert not any(k.startswith("reference.") for k in saved["state_dict"]), (
        "the frozen reference is not saved"
    )

    L.seed_everything(123)  # a different seed: everything that matters must come from the checkpoint
    resumed = _module(tiny_model_dir, old_logprobs=old_logprobs, engine=engine, group_size=group_size)
    _trainer(tmp_path / "resumed").fit(resumed, _data(tiny_model_dir), ckpt_path=middle)

    assert resumed.iterations == ITERATIONS
    expected, actual = straight.state_dict(), resumed.state_dict()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=0, atol=0, msg=name)


def test_start_from_an_sft_lightning_checkpoint_sets_policy_and_reference(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    L.seed_everything(0)
    source = _module(tiny_model_dir)
    with torch.no_grad():
        for parameter in source.model.parameters():
            parameter.add_(0.5)
    checkpoint = tmp_path / "sft.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in source.model.state_dict().items()}}, checkpoint)

    module = ReFTModule(model=str(tiny_model_dir), init_checkpoint=str(checkpoint))
    module.configure_model()
    for name, tensor in source.model.state_dict().items():
        assert torch.equal(module.model.state_dict()[name], tensor), name
        assert torch.equal(module.reference.state_dict()[name], tensor), name
    assert module.reference is not module.model


def test_old_logprobs_are_those_of_the_sampling_distribution_at_any_temperature(tiny_model_dir: Path) -> None:
    """At temperature 0.5 the log-probs PPO uses equal those of ``generate``'s own (warped) scores."""
    module = ReFTModule(model=str(tiny_model_dir), rollout=SamplingArgs(max_new_tokens=8, temperature=0.5))
    module.configure_model()
    model, tokenizer = module.model.eval(), module.tokenizer
    ids, mask = torch.tensor([[0, 5, 6, 7], [8, 9, 10, 11]]), torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])
    ids[0, 0] = tokenizer.pad_token_id
    torch.manual_seed(0)
    with torch.no_grad():
        out = model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=8, do_sample=True, temperature=0.5, top_k=0,
            output_scores=True, return_dict_in_generate=True, eos_token_id=-1,
            pad_token_id=tokenizer.pad_token_id,
        )  # fmt: skip
        response = out.sequences[:, ids.shape[1] :]
        sampled = torch.stack(out.scores, 1).log_softmax(-1).gather(-1, response.unsqueeze(-1)).squeeze(-1)
        attention = torch.cat([mask, torch.ones_like(response)], 1)
        ours, _, _ = module.policy_outputs(out.sequences, attention, response)
        reference = module._reference_logprobs(out.sequences, attention, response)
    torch.testing.assert_close(ours, sampled, atol=1e-4, rtol=0)
    torch.testing.assert_close(reference, sampled, atol=1e-4, rtol=0)  # the reference is the start policy


def test_adaptive_kl_coefficient_follows_the_kl_of_all_processes(tiny_model_dir: Path) -> None:
    """Beta is updated from the mean over processes (here a stand-in strategy says 0.5 nats per
    sequence while this process saw 2.0) and their total sequence count, so every rank keeps one beta."""
    module = ReFTModule(
        model=str(tiny_model_dir), ppo=PPOArgs(adaptive_kl_target=1.0, adaptive_kl_horizon=100)
    )
    reduced: list[float] = []

    def reduce(tensor: torch.Tensor, reduce_op: str) -> torch.Tensor:
        assert reduce_op == "mean"
        reduced.append(float(tensor))
        return torch.tensor(0.5, dtype=torch.float64)

    module._trainer = SimpleNamespace(strategy=SimpleNamespace(reduce=reduce), world_size=2)  # type: ignore[assignment]
    module._update_kl_coefficient(torch.tensor([1.0, 2.0, 3.0, 2.0]))
    assert reduced == [2.0]
    # e = clip(0.5 / 1 - 1, -0.2, 0.2) = -0.2 over 4 x 2 sequences: 0.05 * (1 - 0.2 * 8 / 100)
    assert math.isclose(module.kl_controller.value, 0.05 * (1 - 0.2 * 8 / 100))


def test_reft_refuses_a_data_module_set_to_sft_batches(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = SyntheticDataModule(
        tokenizer=str(tiny_model_dir), num_train=16, num_val=4, num_test=4, train_batches="sft", batch_size=4
    )
    with pytest.raises(
        ValueError, match=r"trains on 'prompts' batches, but data\.init_args\.train_batches is 'sft'"
    ):
        _trainer(tmp_path).fit(_module(tiny_model_dir), datamodule=data)


def test_a_checkpoint_rebuilds_its_module_from_saved_hyperparameters(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """The stage's arguments are saved as plain data (the file loads with ``weights_only=True``)
    and ``load_from_checkpoint`` rebuilds the same module: settings, models and trained weights."""
    L.seed_everything(0)
    trained = _module(tiny_model_dir)
    _trainer(tmp_path, [ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="last")]).fit(
        trained, _data(tiny_model_dir)
    )
    path = tmp_path / "ckpt" / "last.ckpt"

    saved = torch.load(path, map_location="cpu", weights_only=True)["hyper_parameters"]
    assert saved["ppo"]["kl_coef"] == 0.05 and saved["rollout"]["max_new_tokens"] == 12
    assert saved["optimizer"]["lr"] == 1e-3 and "reward" not in saved

    rebuilt = ReFTModule.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    assert rebuilt.ppo == trained.ppo and rebuilt.rollout_args == trained.rollout_args
    assert rebuilt.optimizer_args == trained.optimizer_args
    for name, tensor in trained.model.state_dict().items():
        assert torch.equal(rebuilt.model.state_dict()[name], tensor), name
    for name, tensor in trained.value_head.state_dict().items():
        assert torch.equal(rebuilt.value_head.state_dict()[name], tensor), name


@pytest.mark.parametrize("value_lr", [-1e-5, 0.0])
def test_a_value_lr_that_is_not_positive_is_refused(tiny_model_dir: Path, value_lr: float) -> None:
    with pytest.raises(ValueError, match=r"value_lr=.*: must be a positive learning rate"):
        ReFTModule(model=str(tiny_model_dir), value_lr=value_lr)
