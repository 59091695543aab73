"""``gathered``: a sharded model's blocks are gathered once for a whole generation, not once per
token, and the generation is the same (FSDP2 on a one-process gloo group; the gathers counted are
FSDP2's unshards that do work, each an all-gather on more processes)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp._fully_shard import _fsdp_param_group

from reft_lightning.models.loading import load_causal_lm
from reft_lightning.models.sharding import gathered, shard_model, transformer_blocks

NEW_TOKENS = 6


@pytest.fixture
def process_group(tmp_path: Path) -> Iterator[None]:
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def _generate(model: torch.nn.Module) -> torch.Tensor:
    prompt = torch.tensor([[5, 9, 14, 3]])
    return model.generate(
        input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=NEW_TOKENS,
        min_new_tokens=NEW_TOKENS, do_sample=False, pad_token_id=0,
    )  # fmt: skip


def test_a_generation_gathers_each_block_once(
    tiny_model_dir: Path, process_group: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = _generate(load_causal_lm(str(tiny_model_dir)))
    model = load_causal_lm(str(tiny_model_dir))
    shard_model(model, init_device_mesh("cpu", (1,)))
    calls: list[int] = []
    real = _fsdp_param_group.FSDPParamGroup.unshard

    def counted(group: _fsdp_param_group.FSDPParamGroup, *args: object, **kwargs: object) -> None:
        if not group.is_unsharded and group._all_gather_result is None:  # a gather that does work
            calls.append(1)  # (on one process FSDP2 skips the all-gather itself, not this step)
        real(group, *args, **kwargs)

    monkeypatch.setattr(_fsdp_param_group.FSDPParamGroup, "unshard", counted)
    units = len(transformer_blocks(model)) + 1

    assert torch.equal(_generate(model), reference)
    per_token = len(calls)
    assert per_token >= NEW_TOKENS * len(transformer_blocks(model)), "without it: every block, every token"
    calls.clear()
    with gathered(model):
        assert torch.equal(_generate(model), reference)
    assert 0 < len(calls) <= units, "with it: each unit at most once (the root may still be gathered)"
    calls.clear()
    _generate(model)
    assert len(calls) == per_token, "after it, blocks reshard after forward again"
