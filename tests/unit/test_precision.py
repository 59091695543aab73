"""Precision set in the stage's config. ``model.init_args.fsdp``: the gathered weights compute in
``param_dtype`` while the sharded weights (the optimizer's) keep the stage's dtype, and values stay
float32 (FSDP2 on a one-process gloo group). ReFT's ``reference_dtype``: a bf16 reference beside a
float32 policy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh

from reft_lightning.models.builder import ModelBuilder
from reft_lightning.models.loading import load_causal_lm
from reft_lightning.models.sharding import FSDPArgs, shard_model
from reft_lightning.stages.reft import ReFTModule

PROMPT = torch.tensor([[5, 9, 14, 3, 7, 11]])


@pytest.fixture
def process_group(tmp_path: Path) -> Iterator[None]:
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


@pytest.mark.parametrize(
    ("param_dtype", "logits_dtype"), [(None, torch.float32), ("bfloat16", torch.bfloat16)]
)
def test_the_gathered_weights_compute_in_param_dtype(
    tiny_model_dir: Path, process_group: None, param_dtype: str | None, logits_dtype: torch.dtype
) -> None:
    plain = load_causal_lm(str(tiny_model_dir)).eval()
    model = load_causal_lm(str(tiny_model_dir)).eval()
    shard_model(
        model, init_device_mesh("cpu", (1,)), FSDPArgs(param_dtype=param_dtype, reduce_dtype="float32")
    )
    assert {p.dtype for p in model.parameters()} == {torch.float32}, "master weights stay float32"
    logits = model(input_ids=PROMPT).logits.detach()
    assert logits.dtype == logits_dtype
    expected = plain(input_ids=PROMPT).logits
    tolerance = 0.0 if param_dtype is None else 0.05 * float(expected.abs().max())
    assert float((logits.float() - expected).abs().max()) <= tolerance + 1e-5


def test_reft_values_stay_float32_under_bf16_compute(tiny_model_dir: Path, process_group: None) -> None:
    module = ReFTModule(model=str(tiny_model_dir), fsdp=FSDPArgs(param_dtype="bfloat16"))
    module.build_models(ModelBuilder(init_device_mesh("cpu", (1,)), module.fsdp))
    logp, values, logits = module.policy_outputs(PROMPT, torch.ones_like(PROMPT), PROMPT[:, 3:])
    assert logits.dtype == torch.bfloat16
    assert logp.dtype == torch.float32 and values.dtype == torch.float32 and values.shape == (1, 3)
    reference_logits = module.reference(input_ids=PROMPT).logits
    assert reference_logits.dtype == torch.bfloat16, "the frozen reference is sharded with the same policy"


def test_an_unknown_dtype_is_refused_naming_the_choices() -> None:
    with pytest.raises(ValueError, match="dtype must be one of"):
        FSDPArgs(param_dtype="float8")


def test_a_bf16_reference_gives_float32_logprobs_near_the_float32_ones(tiny_model_dir: Path) -> None:
    full, half = (ReFTModule(model=str(tiny_model_dir), reference_dtype=d) for d in (None, "bfloat16"))
    for module in (full, half):
        module.build_models(ModelBuilder())
    assert {p.dtype for p in half.reference.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in half.model.parameters()} == {torch.float32}, "the policy keeps its dtype"
    mask = torch.ones_like(PROMPT)
    exact, rounded = (m._reference_logprobs(PROMPT, mask, PROMPT[:, 3:]) for m in (full, half))
    assert rounded.dtype == torch.float32
    assert 0 < float((exact - rounded).abs().max()) < 0.1
