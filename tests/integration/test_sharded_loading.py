"""Sharded building on two gloo processes: each keeps only its own half of every weight, read
straight from the checkpoint files (never a whole model: ``from_pretrained`` is refused), and the
sharded model computes what the whole one computes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.distributed.device_mesh import init_device_mesh
from transformers import AutoModelForCausalLM

from reft_lightning.models.builder import ModelBuilder
from reft_lightning.models.loading import load_causal_lm
from reft_lightning.models.sharded_loading import CheckpointTensors

pytestmark = pytest.mark.slow  # several processes: `make test` runs these after the rest

WORLD = 2
PROMPT = torch.tensor([[5, 9, 14, 3, 7, 11, 2, 8]])


def _refuse(*args: object, **kwargs: object) -> None:
    raise AssertionError("from_pretrained loads a whole model; sharded building must not call it")


def _build_and_report(rank: int, model_dir: str, folder: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=WORLD)
    AutoModelForCausalLM.from_pretrained = _refuse
    model = ModelBuilder(init_device_mesh("cpu", (WORLD,))).causal_lm(model_dir, "float32", key="model")
    local = {name: param.to_local().detach().clone() for name, param in model.named_parameters()}
    torch.save(local, f"{folder}/shards_{rank}.pt")
    logits = model.eval()(input_ids=PROMPT).logits.detach()
    Path(f"{folder}/logits_{rank}.json").write_text(json.dumps(logits.flatten().tolist()))
    dist.destroy_process_group()


def test_each_process_holds_only_its_half_and_the_model_computes_as_a_whole(
    tiny_llama_dir: Path, tmp_path: Path
) -> None:
    mp.spawn(_build_and_report, args=(str(tiny_llama_dir), str(tmp_path)), nprocs=WORLD, join=True)
    with CheckpointTensors(tiny_llama_dir) as tensors:
        full = {name: tensors[name].clone() for name in tensors}
    shards = [torch.load(tmp_path / f"shards_{rank}.pt") for rank in range(WORLD)]
    assert shards[0].keys() == full.keys()
    for name, tensor in full.items():
        halves = torch.chunk(tensor, WORLD, dim=0)  # FSDP2 shards dim 0, the last piece may be short
        for rank in range(WORLD):
            assert torch.equal(shards[rank][name], halves[rank]), f"rank {rank}: {name}"
    held = [sum(t.numel() for t in shard.values()) for shard in shards]
    total = sum(t.numel() for t in full.values())
    assert max(held) <= total / WORLD + 64, f"a process holds {max(held)} of {total} weights"
    expected = load_causal_lm(str(tiny_llama_dir)).eval()(input_ids=PROMPT).logits.flatten()
    for rank in range(WORLD):
        logits = torch.tensor(json.loads((tmp_path / f"logits_{rank}.json").read_text()))
        assert torch.allclose(logits, expected, atol=1e-5), f"rank {rank}"
