"""The vLLM engine's contract, against a fake ``vllm`` module (vLLM itself is not installed here).

The fake records what the engine asks of ``vllm.LLM`` and ``vllm.SamplingParams`` and answers with
canned token ids, so these tests check our side of the seam: prompts without their padding, the
mapping of ``GenerationArgs``, the conversion to ``Completions``, the weights handed over, and the
stage wiring of ``model.init_args.engine``. Whether real vLLM behaves as its documentation says
is not tested here.
"""

from __future__ import annotations

import copy
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
import torch
import torch.distributed as dist
from jsonargparse import ArgumentParser
from torch.distributed.device_mesh import init_device_mesh

from reft_lightning.generation import (
    EngineArgs,
    GenerationArgs,
    GenerationEngine,
    HFGenerationEngine,
    SamplingArgs,
    VLLMGenerationEngine,
    build_engine,
)
from reft_lightning.models.loading import load_causal_lm, load_tokenizer
from reft_lightning.models.lora import LoRAArgs, add_adapters
from reft_lightning.models.sharding import shard_model
from reft_lightning.stages.reft import ReFTModule
from reft_lightning.stages.sft import SFTModule


class FakeInferenceModel:
    """Stands in for vLLM's model: records every ``(name, tensor)`` its ``load_weights`` is given."""

    def __init__(self) -> None:
        self.loaded: list[tuple[str, torch.Tensor]] = []
        self.calls = 0

    def load_weights(self, weights: Any) -> set[str]:
        self.calls += 1
        for name, tensor in weights:
            self.loaded.append((name, tensor.clone()))
        return {name for name, _ in self.loaded}


class FakeLLM:
    """Records its construction and ``generate`` calls; answers with ``FakeLLM.replies``."""

    replies: ClassVar[list[list[int]]] = []
    built: ClassVar[list[FakeLLM]] = []

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.generate_calls: list[dict[str, Any]] = []
        self.prefix_resets = 0
        self.model = FakeInferenceModel()
        runner = SimpleNamespace(model=self.model)
        self.llm_engine = SimpleNamespace(
            model_executor=SimpleNamespace(driver_worker=SimpleNamespace(model_runner=runner))
        )
        torch.manual_seed(kwargs["seed"])  # as vLLM's worker seeds the global generators
        FakeLLM.built.append(self)

    def generate(
        self, prompts: list[dict[str, list[int]]], sampling_params: Any, use_tqdm: bool
    ) -> list[Any]:
        self.generate_calls.append({"prompts": prompts, "params": sampling_params, "use_tqdm": use_tqdm})
        assert len(self.replies) == len(prompts), "the test's canned replies do not match the prompts"
        return [SimpleNamespace(outputs=[SimpleNamespace(token_ids=tuple(reply))]) for reply in self.replies]

    def reset_prefix_cache(self) -> bool:
        self.prefix_resets += 1
        return True


class FakeSamplingParams:
    """Keeps its keyword arguments as attributes (and in ``kwargs``)."""

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.__dict__.update(kwargs)


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    module = types.ModuleType("vllm")
    module.LLM = FakeLLM
    module.SamplingParams = FakeSamplingParams
    monkeypatch.setitem(sys.modules, "vllm", module)
    monkeypatch.setattr(FakeLLM, "replies", [])
    monkeypatch.setattr(FakeLLM, "built", [])
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)  # set by the engine for vLLM's external launcher
    yield module


@pytest.fixture
def tokenizer(tiny_model_dir: Path) -> Any:
    return load_tokenizer(str(tiny_model_dir))


def _engine(tiny_model_dir: Path, tokenizer: Any, **kwargs: Any) -> tuple[VLLMGenerationEngine, FakeLLM]:
    engine = VLLMGenerationEngine(str(tiny_model_dir), tokenizer, **kwargs)
    assert isinstance(engine, GenerationEngine)
    return engine, FakeLLM.built[-1]


def test_the_llm_is_built_from_the_policy_name_and_dtype_in_this_process(
    fake_vllm: types.ModuleType, tiny_model_dir: Path, tokenizer: Any
) -> None:
    _, llm = _engine(
        tiny_model_dir, tokenizer, dtype="bfloat16", gpu_memory_utilization=0.4, max_model_len=256
    )
    assert llm.kwargs == {
        "model": str(tiny_model_dir),
        "tokenizer": str(tiny_model_dir),
        "dtype": "bfloat16",
        "gpu_memory_utilization": 0.4,
        "max_model_len": 256,
        "tensor_parallel_size": 1,
        "distributed_executor_backend": "external_launcher",
        "seed": 0,
    }
    import os

    assert (os.environ["RANK"], os.environ["LOCAL_RANK"], os.environ["WORLD_SIZE"]) == ("0", "0", "1")
    assert os.environ["MASTER_ADDR"] == "localhost" and int(os.environ["MASTER_PORT"]) > 0


def test_building_the_llm_keeps_the_trainers_random_streams(
    fake_vllm: types.ModuleType, tiny_model_dir: Path, tokenizer: Any
) -> None:
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    _engine(tiny_model_dir, tokenizer)  # the fake reseeds torch with 0, as vLLM does
    assert torch.equal(torch.rand(3), expected)


def test_each_prompt_goes_to_vllm_without_its_left_padding(
    fake_vllm: types.ModuleType, tiny_model_dir: Path, tokenizer: Any
) -> None:
    engine, llm = _engine(tiny_model_dir, tokenizer)
    pad = tokenizer.pad_token_id
    prompt_ids = torch.tensor([[pad, pad, 5, 6, 7], [pad, 8, pad, 10, 11], [12, 13, 14, 15, 16]])
    prompt_mask = torch.tensor([[0, 0, 1, 1, 1], [0, 1, 1, 1, 1], [1, 1, 1, 1, 1]])
    FakeLLM.replies = [[20], [21], [22]]
    engine.generate(prompt_ids, prompt_mask, GenerationArgs(max_new_tokens=4))
    (call,) = llm.generate_calls
    # the mask decides, not the token: row 1 keeps a real token that equals the pad id
    assert call["prompts"] == [
        {"prompt_token_ids": [5, 6, 7]},
        {"prompt_token_ids": [8, pad, 10, 11]},
        {"prompt_token_ids": [12, 13, 14, 15, 16]},
    ]
    assert call["use_tqdm"] is False


def test_completions_are_padded_after_eos_masked_and_decoded(
    fake_vllm: types.ModuleType, tiny_model_dir: Path, tokenizer: Any
) -> None:
    engine, _ = _engine(tiny_model_dir, tokenizer)
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    assert eos != pad
    FakeLLM.replies = [
        [20, 21, eos],  # stopped at EOS (vLLM keeps the stop token)
        [22, 23, 24, 25],  # ran to max_new_tokens
        [eos],  # EOS at once: an empty completion
        [26],  # stopped early without the tokenizer's EOS (another EOS of the model's config)
    ]
    prompt_ids = torch.tensor([[5, 6], [7, 8], [9, 10], [11, 12]])
    completions = engine.generate(prompt_ids, torch.ones_like(prompt_ids), GenerationArgs(max_new_tokens=4))
    expected_ids = torch.tensor(
        [[20, 21, eos, pad], [22, 23, 24, 25], [eos, pad, pad, pad], [26, pad, pad, pad]]
    )
    expected_mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0], [1, 0, 0, 0]])
    assert torch.equal(completions.response_ids, expected_ids)
    assert torch.equal(completions.response_mask, expected_mask)
    assert completions.response_ids.dtype == prompt_ids.dtype
    assert completions.response_ids.device == prompt_ids.device
    assert completions.texts == [
        tokenizer.decode([20, 21]),
        tokenizer.decode([22, 23, 24, 25]),
        "",
        tokenizer.decode([26]),
    ]


def test_greedy_is_temperature_zero_without_seeds(
    fake_vllm: types.ModuleType, tiny_model_dir: Path, tokenizer: Any
) -> None:
    engine, _ = _engine(tiny_model_dir, tokenizer)
    params = engine.sampling_params(GenerationArgs(max_new_tokens=7, temperature=0.7, top_k=5, top_p=0.9), 2)
    assert len(params) == 2
    for param in params:
        assert param.kwargs == {
            "n": 1,
            "max_tokens": 7,
            "seed": None,
            "stop_token_ids": [tokenizer.eos_token_id],
            "detokenize": False,
            "temperature": 0.0,
        }


@pytest.mark.parametrize(("top_k", "vllm_top_k"), [(0, 0), (5, 5)])
def test_sampling_keeps_temperature_top_p_and_maps_top_k(
    fake_vllm: types.ModuleType, tiny_model_dir: Path, tokenizer: Any, top_k: int, vllm_top_k: int
) -> None:
    engine, _ = _engine(tiny_model_dir, tokenizer)
    args = SamplingArgs(max_new_tokens=9, temperature=0.8, top_k=top_k, top_p=0.95)
    (param,) = engine.sampling_params(args, 1)
    assert param.temperature == 0.8 and param.top_p == 0.95 and param.top_k == vllm_top_k
    assert param.max_tokens == 9 and param.n == 1 and param.stop_token_ids == [tokenizer.eos_token_id]


def test_sampling_seeds_differ_per_request_and_follow_torchs_generator(
    fake_vllm: types.ModuleType, tiny_model_dir: Path, tokenizer: Any
) -> None:
    engine, _ = _engine(tiny_model_dir, tokenizer)

    def seeds(torch_seed: int) -> list[int]:
        torch.manual_seed(torch_seed)
        return [param.seed for param in engine.sampling_params(SamplingArgs(), 4)]

    first = seeds(7)
    assert len(set(first)) == 4, "repeated prompts (ReFT's k samples) must not share a seed"
    assert all(isinstance(seed, int) for seed in first)
    assert seeds(7) == first, "the same torch seed gives the same rollouts"
    assert seeds(8) != first


def test_update_weights_loads_every_parameter_by_name(
    fake_vllm: types.ModuleType, tiny_model_dir: Path, tokenizer: Any
) -> None:
    engine, llm = _engine(tiny_model_dir, tokenizer)
    policy = load_causal_lm(str(tiny_model_dir))
    with torch.no_grad():
        policy.transformer.wte.weight.add_(1.0)  # weights other than those vLLM loaded from disk
    engine.update_weights(policy)
    expected = dict(policy.named_parameters())
    assert [name for name, _ in llm.model.loaded] == list(expected)
    assert "transformer.h.0.attn.c_attn.weight" in expected  # Hugging Face names, as vLLM's loader reads
    for name, tensor in llm.model.loaded:
        assert torch.equal(tensor, expected[name]), name
    assert llm.model.calls == 1 and llm.prefix_resets == 1


def test_update_weights_merges_lora_adapters_under_the_base_names(
    fake_vllm: types.ModuleType, tiny_model_dir: Path, tokenizer: Any
) -> None:
    engine, llm = _engine(tiny_model_dir, tokenizer)
    policy = add_adapters(load_causal_lm(str(tiny_model_dir)), LoRAArgs(r=4, dropout=0.0))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, parameter in policy.named_parameters():
            if "lora_B" in name:  # B starts at zero (no update); give the adapters one
                parameter.normal_(std=0.1)
    before = {name: p.detach().clone() for name, p in policy.named_parameters()}
    engine.update_weights(policy)
    expected = dict(copy.deepcopy(policy).merge_and_unload().named_parameters())
    assert [name for name, _ in llm.model.loaded] == list(expected)
    assert "transformer.h.0.attn.c_attn.weight" in expected
    for name, tensor in llm.model.loaded:
        torch.testing.assert_close(tensor, expected[name], msg=name)
    plain = dict(load_causal_lm(str(tiny_model_dir)).named_parameters())
    assert not torch.allclose(
        expected["transformer.h.0.attn.c_attn.weight"], plain["transformer.h.0.attn.c_attn.weight"]
    )
    for name, parameter in policy.named_parameters():
        assert torch.equal(parameter, before[name]), f"{name} was changed by the update"


def test_update_weights_gathers_sharded_parameters_whole(
    fake_vllm: types.ModuleType, tiny_model_dir: Path, tokenizer: Any, tmp_path: Path
) -> None:
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        engine, llm = _engine(tiny_model_dir, tokenizer)
        plain = load_causal_lm(str(tiny_model_dir))
        policy = load_causal_lm(str(tiny_model_dir))
        shard_model(policy, init_device_mesh("cpu", (1,)))
        assert all(hasattr(p, "full_tensor") for p in policy.parameters())
        engine.update_weights(policy)
    finally:
        dist.destroy_process_group()
    expected = dict(plain.named_parameters())
    assert [name for name, _ in llm.model.loaded] == list(expected)
    for name, tensor in llm.model.loaded:
        assert not hasattr(tensor, "full_tensor"), f"{name} reached vLLM as a DTensor"
        assert torch.equal(tensor, expected[name]), name


def test_update_weights_gathers_what_load_weights_leaves(
    fake_vllm: types.ModuleType, tiny_model_dir: Path, tokenizer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, llm = _engine(tiny_model_dir, tokenizer)
    reached: list[str] = []

    def lazy_load(weights: Iterator[tuple[str, torch.Tensor]]) -> None:
        next(weights)  # a loader that stops early must not leave other processes in a gather

    monkeypatch.setattr(llm.model, "load_weights", lazy_load)
    monkeypatch.setattr(
        "reft_lightning.generation.vllm.whole", lambda tensor: reached.append(tensor.shape) or tensor
    )
    policy = load_causal_lm(str(tiny_model_dir))
    engine.update_weights(policy)
    assert len(reached) == len(list(policy.parameters()))


def test_a_missing_vllm_names_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path, tokenizer: Any
) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'reft_lightning\[vllm\]'"):
        VLLMGenerationEngine(str(tiny_model_dir), tokenizer)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "sglang"}, r"engine\.name must be 'hf', 'static' or 'vllm', got 'sglang'"),
        ({"gpu_memory_utilization": 0.0}, r"engine\.gpu_memory_utilization must be a fraction in \(0, 1\]"),
        ({"gpu_memory_utilization": 1.5}, r"engine\.gpu_memory_utilization must be a fraction in \(0, 1\]"),
        ({"max_model_len": 0}, r"engine\.max_model_len must be a positive token count or null, got 0"),
    ],
)
def test_engine_args_refuse_bad_values(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EngineArgs(**kwargs)


def test_engine_args_accept_their_range() -> None:
    EngineArgs(name="vllm", gpu_memory_utilization=1.0, max_model_len=1)
    assert EngineArgs() == EngineArgs(name="hf", gpu_memory_utilization=0.3, max_model_len=None)


def test_build_engine_picks_the_engine(
    fake_vllm: types.ModuleType, tiny_model_dir: Path, tokenizer: Any
) -> None:
    model = load_causal_lm(str(tiny_model_dir))
    hf = build_engine(EngineArgs(), model, tokenizer, str(tiny_model_dir), "float32")
    assert isinstance(hf, HFGenerationEngine) and hf.model is model
    assert not FakeLLM.built
    vllm = build_engine(EngineArgs(name="vllm"), model, tokenizer, str(tiny_model_dir), "float32", "tok")
    assert isinstance(vllm, VLLMGenerationEngine)
    assert FakeLLM.built[-1].kwargs["tokenizer"] == "tok"


@pytest.mark.parametrize("stage", [SFTModule, ReFTModule])
def test_a_stage_configured_with_engine_vllm_builds_and_syncs_it(
    fake_vllm: types.ModuleType, tiny_model_dir: Path, stage: type
) -> None:
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(stage, "model")
    config = parser.parse_string(
        f"model:\n  model: {tiny_model_dir}\n  engine:\n    name: vllm\n    gpu_memory_utilization: 0.5\n"
    )
    module = parser.instantiate(config).model
    assert module.engine_args == EngineArgs(name="vllm", gpu_memory_utilization=0.5)
    assert module.hparams["engine"] == {
        "name": "vllm", "compile": True, "prompt_bucket": 16, "cache_chunk": 64,
        "gpu_memory_utilization": 0.5, "max_model_len": None,
    }  # fmt: skip
    module.configure_model()
    assert isinstance(module.engine, VLLMGenerationEngine)
    (llm,) = FakeLLM.built
    assert llm.kwargs["model"] == str(tiny_model_dir) and llm.kwargs["dtype"] == "float32"
    assert llm.kwargs["gpu_memory_utilization"] == 0.5
    module.sync_engine()  # vLLM has model_name's weights; the policy may have init_checkpoint's
    module.sync_engine()  # nothing changed since
    assert llm.model.calls == 1
    assert [name for name, _ in llm.model.loaded] == [name for name, _ in module.model.named_parameters()]
    module.on_load_checkpoint({})  # a checkpoint's weights: stale again
    module.on_validation_start()
    assert llm.model.calls == 2


def test_a_stage_restored_from_hyperparameters_rebuilds_engine_args(tiny_model_dir: Path) -> None:
    module = SFTModule(model=str(tiny_model_dir), engine={"name": "hf", "gpu_memory_utilization": 0.2})
    assert module.engine_args == EngineArgs(gpu_memory_utilization=0.2)
