"""``compile_blocks``: every model a stage builds has its transformer blocks compiled in place, and a
compiled ReFT iteration equals the eager one within float rounding (inductor on CPU: slow, tens of s)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from reft_lightning.generation import SamplingArgs
from reft_lightning.models.builder import ModelBuilder
from reft_lightning.models.sharding import transformer_blocks
from reft_lightning.stages.optim import OptimizerArgs
from reft_lightning.stages.reft import ReFTModule
from tests.integration.test_reft import _data, _trainer


@pytest.mark.slow
def test_a_compiled_reft_iteration_equals_the_eager_one(tiny_model_dir: Path, tmp_path: Path) -> None:
    modules, metrics = {}, {}
    for compiled in (False, True):
        L.seed_everything(0)
        module = ReFTModule(
            model=str(tiny_model_dir), compile_blocks=compiled, rollout=SamplingArgs(max_new_tokens=12),
            value_model=str(tiny_model_dir),
            optimizer=OptimizerArgs(lr=1e-4, schedule="constant", warmup_ratio=0.0),
        )  # fmt: skip
        trainer = _trainer(tmp_path / str(compiled))
        trainer.fit_loop.epoch_loop.max_steps = 2  # one iteration of 2 PPO epochs
        trainer.fit(module, _data(tiny_model_dir))
        modules[compiled], metrics[compiled] = module, dict(trainer.logged_metrics)
    for model in (modules[True].model, modules[True].reference, modules[True].value_model):
        assert all(block._compiled_call_impl is not None for block in transformer_blocks(model))
    assert all(block._compiled_call_impl is None for block in transformer_blocks(modules[False].model))
    compared = [k for k in metrics[False] if k.startswith("train/") and not k.endswith("_per_s")]
    for name in compared:  # a clip fraction may move by a token (48 response tokens x 2 epochs) at a boundary
        atol = 1.5 / 96 if name.endswith("clip_fraction") else 1e-4
        torch.testing.assert_close(metrics[True][name], metrics[False][name], atol=atol, rtol=1e-4, msg=name)
    expected = modules[False].state_dict()
    for name, tensor in modules[True].state_dict().items():  # the same keys: compiled in place
        torch.testing.assert_close(tensor, expected[name], atol=1e-5, rtol=0, msg=name)


def test_compiled_blocks_are_refused_with_a_mesh() -> None:
    with pytest.raises(ValueError, match="compile_blocks: true is not supported with sharded models"):
        ModelBuilder(mesh=object(), compile_blocks=True)  # type: ignore[arg-type]
