"""Models built on the meta device, sharded, then filled from the checkpoint files (one gloo
process): they compute what ``from_pretrained`` computes, keep tied weights tied and rotary buffers
right, read split safetensors checkpoints, take ``init_checkpoint`` weights, and never call
``from_pretrained``. Several processes: tests/integration/test_sharded_loading.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import CPUOffloadPolicy, fully_shard
from transformers import AutoModelForCausalLM

from reft_lightning.models.builder import ModelBuilder
from reft_lightning.models.loading import load_causal_lm
from reft_lightning.models.sharded_loading import CheckpointTensors, empty_causal_lm
from reft_lightning.models.sharding import is_sharded, whole
from reft_lightning.stages.reft import ReFTModule

PROMPT = torch.tensor([[5, 9, 14, 3, 7, 11, 2, 8]])
KEY = "model.init_args.model"


@pytest.fixture
def sharded_builder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModelBuilder]:
    """A builder over a one-process gloo mesh, with ``from_pretrained`` made to fail."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("from_pretrained loads a whole model; sharded building must not call it")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", refuse)
    yield ModelBuilder(init_device_mesh("cpu", (1,)))
    dist.destroy_process_group()


def _logits(model: torch.nn.Module) -> torch.Tensor:
    return model.eval()(input_ids=PROMPT).logits.detach()


@pytest.mark.parametrize("model_dir", ["tiny_model_dir", "tiny_llama_dir"])
def test_a_sharded_build_computes_what_from_pretrained_computes(
    model_dir: str, request: pytest.FixtureRequest
) -> None:
    directory = request.getfixturevalue(model_dir)
    expected = _logits(load_causal_lm(str(directory)))
    sharded_builder = request.getfixturevalue("sharded_builder")  # from_pretrained refused from here
    model = sharded_builder.causal_lm(str(directory), "float32", key=KEY)
    assert is_sharded(model) and model.training
    assert torch.allclose(_logits(model), expected, atol=1e-6)


def test_tied_weights_stay_tied_and_buffers_keep_their_values(
    tiny_model_dir: Path, tiny_llama_dir: Path
) -> None:
    gpt2 = empty_causal_lm(tiny_model_dir, "float32")
    assert {p.device.type for p in gpt2.parameters()} == {"meta"}
    assert gpt2.lm_head.weight is gpt2.get_input_embeddings().weight
    llama = empty_causal_lm(tiny_llama_dir, "bfloat16")
    assert llama.lm_head.weight is not llama.get_input_embeddings().weight
    assert {p.dtype for p in llama.parameters()} == {torch.bfloat16}
    loaded = load_causal_lm(str(tiny_llama_dir))
    built, real = llama.model.rotary_emb.inv_freq, loaded.model.rotary_emb.inv_freq
    assert built.device.type == "cpu" and torch.equal(built, real) and float(real.abs().sum()) > 0


def test_a_split_checkpoint_is_read_tensor_by_tensor(tiny_llama_dir: Path) -> None:
    files = sorted(p.name for p in tiny_llama_dir.glob("*.safetensors"))
    assert len(files) > 1, "the fixture splits its weights over several files"
    state = load_causal_lm(str(tiny_llama_dir)).state_dict()
    with CheckpointTensors(tiny_llama_dir) as tensors:
        assert set(tensors) == set(state)
        for name, value in state.items():
            assert torch.equal(tensors[name], value), name


def load_state(directory: Path) -> dict[str, torch.Tensor]:
    with CheckpointTensors(directory) as tensors:
        return {name: tensors[name].clone() for name in tensors}


def test_init_checkpoint_weights_replace_the_directory_weights(
    tiny_llama_dir: Path, sharded_builder: ModelBuilder
) -> None:
    torch.manual_seed(1)
    other = {name: torch.randn_like(value) for name, value in load_state(tiny_llama_dir).items()}
    model = sharded_builder.causal_lm(str(tiny_llama_dir), "float32", key=KEY, weights=other)
    for name, param in model.named_parameters():
        assert torch.equal(whole(param.detach()), other[name]), name


def test_a_missing_or_misshapen_weight_is_refused_naming_it(
    tiny_llama_dir: Path, sharded_builder: ModelBuilder
) -> None:
    state = load_state(tiny_llama_dir)
    missing = {k: v for k, v in state.items() if k != "model.norm.weight"}
    with pytest.raises(
        KeyError, match=r"init_checkpoint weights for model.init_args.model.*'model.norm.weight'"
    ):
        sharded_builder.causal_lm(str(tiny_llama_dir), "float32", key=KEY, weights=missing)
    misshapen = {**state, "model.norm.weight": torch.ones(7)}
    with pytest.raises(ValueError, match=r"model.norm.weight has shape \(7,\), the model \(32,\)"):
        sharded_builder.causal_lm(str(tiny_llama_dir), "float32", key=KEY, weights=misshapen)


def test_reft_builds_every_model_sharded_without_a_whole_copy(
    tiny_llama_dir: Path, sharded_builder: ModelBuilder
) -> None:
    module = ReFTModule(
        model=str(tiny_llama_dir), value_model=str(tiny_llama_dir), reference_dtype="bfloat16"
    )
    module.build_models(sharded_builder)
    for model in (module.model, module.reference, module.value_model, module.value_head):
        assert is_sharded(model)
    assert not module.reference.training and not any(p.requires_grad for p in module.reference.parameters())
    assert {p.dtype for p in module.reference.parameters()} == {torch.bfloat16}
    assert not module.value_model.lm_head.weight.requires_grad, "the untied head of the value model is frozen"
    state = load_state(tiny_llama_dir)
    for name, param in module.reference.named_parameters():
        assert torch.equal(whole(param.detach()), state[name].to(torch.bfloat16)), name


def test_an_offloaded_reference_gives_the_same_logprobs(
    tiny_llama_dir: Path, sharded_builder: ModelBuilder
) -> None:
    kept, offloaded = (
        ReFTModule(model=str(tiny_llama_dir), reference_offload=offload) for offload in (False, True)
    )
    for module in (kept, offloaded):
        module.build_models(sharded_builder)
    policy = fully_shard.state(offloaded.reference)._fsdp_param_group.offload_policy
    assert isinstance(policy, CPUOffloadPolicy)
    assert not isinstance(
        fully_shard.state(kept.reference)._fsdp_param_group.offload_policy, CPUOffloadPolicy
    )
    mask = torch.ones_like(PROMPT)
    expected, actual = (m._reference_logprobs(PROMPT, mask, PROMPT[:, 4:]) for m in (kept, offloaded))
    assert torch.equal(actual, expected)


def test_reference_offload_without_a_mesh_is_refused_naming_the_key(tiny_model_dir: Path) -> None:
    module = ReFTModule(model=str(tiny_model_dir), reference_offload=True)
    with pytest.raises(
        ValueError, match=r"model.init_args.reference_offload: true needs .*ModelParallelStrategy"
    ):
        module.build_models(ModelBuilder())


def test_a_frozen_model_reshards_its_root_after_forward(
    tiny_llama_dir: Path, sharded_builder: ModelBuilder
) -> None:
    trained = sharded_builder.causal_lm(str(tiny_llama_dir), "float32", key=KEY)
    frozen = sharded_builder.causal_lm(str(tiny_llama_dir), "float32", key=KEY, frozen=True)
    assert not frozen.training and not any(p.requires_grad for p in frozen.parameters())
    for model in (trained, frozen):
        with torch.no_grad():
            model(input_ids=PROMPT)
    gathered = {name for name, p in trained.named_parameters() if not hasattr(p, "full_tensor")}
    assert "model.embed_tokens.weight" in gathered, "FSDP2 keeps a trained root gathered for the backward"
    assert all(hasattr(p, "full_tensor") for p in frozen.parameters()), "the frozen root holds only shards"
