"""LoRA by config (``model.init_args.lora``) on the tiny GPT-2: only the adapters train, the model
starts as the base, ReFT's reference is the base with the adapters disabled (no copy), the value
head stays trainable, and exports are the merged model or the adapter."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from peft import PeftModel
from torch.distributed.device_mesh import init_device_mesh

from reft_lightning.models.builder import ModelBuilder
from reft_lightning.models.loading import load_causal_lm
from reft_lightning.models.lora import LoRAArgs, export_view
from reft_lightning.models.sharding import full_state_dict, is_sharded, whole
from reft_lightning.rl.logprobs import token_logprobs
from reft_lightning.stages.reft import ReFTModule
from reft_lightning.stages.sft import SFTModule
from tests.integration.cli_process import run_reft_ok

PROMPT = torch.tensor([[5, 9, 14, 3, 7, 11, 2, 8]])
LORA = LoRAArgs(r=4, alpha=8.0, dropout=0.0)


def _perturb_adapters(model: torch.nn.Module) -> None:
    """Give the zero-initialised ``lora_B`` weights values, as training would."""
    torch.manual_seed(3)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.5)


def _logits(model: torch.nn.Module) -> torch.Tensor:
    return model.eval()(input_ids=PROMPT).logits.detach()


def test_only_the_adapters_train_and_the_model_starts_as_the_base(tiny_model_dir: Path) -> None:
    module = SFTModule(model=str(tiny_model_dir), lora=LORA)
    module.build_models(ModelBuilder())
    trainable = [name for name, p in module.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)
    base = load_causal_lm(str(tiny_model_dir))
    assert torch.allclose(_logits(module.model), _logits(base), atol=1e-6)
    total = sum(p.numel() for p in module.model.parameters())
    assert sum(p.numel() for p in module.model.parameters() if p.requires_grad) < 0.2 * total


def test_reft_reference_is_the_base_with_adapters_disabled(tiny_model_dir: Path) -> None:
    module = ReFTModule(model=str(tiny_model_dir), lora=LORA, value_dropout=0.0)
    module.build_models(ModelBuilder())
    assert module.reference is None, "no second copy of the weights"
    assert all(p.requires_grad for p in module.value_head.parameters())
    _perturb_adapters(module.model)
    mask = torch.ones_like(PROMPT)
    response = PROMPT[:, 4:]
    base_logits = load_causal_lm(str(tiny_model_dir)).eval()(input_ids=PROMPT).logits[:, 3:-1]
    expected = token_logprobs(base_logits / module.rollout_args.temperature, response)
    reference = module._reference_logprobs(PROMPT, mask, response)
    assert torch.allclose(reference, expected, atol=1e-5)
    policy, _, _ = module.policy_outputs(PROMPT, mask, response)
    assert float((policy.detach() - reference).abs().max()) > 1e-3, "the adapters change the policy"
    assert module.model.training, "disabling the adapters leaves the policy's mode as it was"


def test_exports_are_the_merged_model_or_the_adapter(tiny_model_dir: Path, tmp_path: Path) -> None:
    module = SFTModule(model=str(tiny_model_dir), lora=LORA)
    module.build_models(ModelBuilder())
    _perturb_adapters(module.model)
    adapted = _logits(module.model)
    merged, state = export_view(module.model, module.model.state_dict(), "merged")
    merged.save_pretrained(tmp_path / "merged", state_dict=state)
    plain = load_causal_lm(str(tmp_path / "merged"))
    assert not any("lora" in name for name in plain.state_dict())
    assert torch.allclose(_logits(plain), adapted, atol=1e-5)
    adapter, none = export_view(module.model, module.model.state_dict(), "adapter")
    assert none is None
    adapter.save_pretrained(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    reloaded = PeftModel.from_pretrained(load_causal_lm(str(tiny_model_dir)), tmp_path / "adapter")
    assert torch.allclose(_logits(reloaded), adapted, atol=1e-5)
    assert torch.allclose(_logits(module.model), adapted), "exporting leaves the module unchanged"


def test_an_sft_fit_with_lora_exports_a_plain_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run_reft_ok(
        "fit", "--config=configs/demo/sft_synthetic.yaml", f"--trainer.default_root_dir={run}",
        f"--model.init_args.model={tiny_model_dir}", "--model.init_args.lora.r=4",
        "--model.init_args.optimizer.lr=0.01", "--trainer.max_steps=3", "--trainer.limit_val_batches=0",
        "--trainer.num_sanity_val_steps=0", "--trainer.max_epochs=1", "--data.init_args.num_train=32",
        "--data.init_args.num_val=4", "--data.init_args.num_test=4", "--data.init_args.batch_size=8",
    )  # fmt: skip
    exported = load_causal_lm(str(run / "hf" / "final"))
    base = load_causal_lm(str(tiny_model_dir))
    changed = [n for n, p in exported.state_dict().items() if not torch.equal(p, base.state_dict()[n])]
    assert changed and all(".attn." in n or ".mlp." in n for n in changed), changed


def test_bad_args_are_named() -> None:
    with pytest.raises(ValueError, match=r"lora.r must be >= 0"):
        LoRAArgs(r=-1)
    with pytest.raises(ValueError, match=r"lora.dropout must be in \[0, 1\)"):
        LoRAArgs(dropout=1.0)


@pytest.fixture
def mesh_builder(tmp_path: Path) -> Iterator[ModelBuilder]:
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    yield ModelBuilder(init_device_mesh("cpu", (1,)))
    dist.destroy_process_group()


@pytest.mark.parametrize("model_dir", ["tiny_model_dir", "tiny_llama_dir"])
def test_lora_under_fsdp2_is_sharded_starts_as_the_base_and_exports_merged(
    model_dir: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    directory = request.getfixturevalue(model_dir)
    base_logits = _logits(load_causal_lm(str(directory)))
    builder = request.getfixturevalue("mesh_builder")
    module = ReFTModule(model=str(directory), lora=LORA, value_dropout=0.0)
    module.build_models(builder)
    assert is_sharded(module.model) and module.reference is None
    trainable = [name for name, p in module.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)
    assert torch.allclose(_logits(module.model), base_logits, atol=1e-5), "B = 0: the base's output"
    _perturb_adapters(module.model)
    adapted = _logits(module.model)
    mask = torch.ones_like(PROMPT)
    reference = module._reference_logprobs(PROMPT, mask, PROMPT[:, 4:])
    expected = token_logprobs(base_logits[:, 3:-1] / module.rollout_args.temperature, PROMPT[:, 4:])
    assert torch.allclose(reference, expected, atol=1e-5)
    merged, state = export_view(module.model, full_state_dict(module.model), "merged")
    merged.save_pretrained(tmp_path / "merged", state_dict=state)
    assert torch.allclose(_logits(load_causal_lm(str(tmp_path / "merged"))), adapted, atol=1e-5)


def test_adapters_start_the_same_whole_or_sharded_and_leave_the_global_stream(
    tiny_llama_dir: Path, request: pytest.FixtureRequest
) -> None:
    def adapters(builder: ModelBuilder) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        module = SFTModule(model=str(tiny_llama_dir), lora=LORA)
        before = torch.get_rng_state()
        module.build_models(builder)
        assert torch.equal(torch.get_rng_state(), before), "building adapters draws from its own generator"
        return {n: whole(p.detach()) for n, p in module.model.named_parameters() if "lora_A" in n}

    whole_start = adapters(ModelBuilder())
    sharded_start = adapters(request.getfixturevalue("mesh_builder"))
    assert whole_start.keys() == sharded_start.keys() and whole_start
    for name, value in whole_start.items():
        assert torch.equal(sharded_start[name], value) and float(value.abs().sum()) > 0, name
