"""Resumable sampler, learning-rate schedule and response masks, against hand-worked values."""

from __future__ import annotations

import math

import pytest
import torch

from reft_lightning.data.sampler import EvalShardSampler, ResumableSampler
from reft_lightning.generation import response_mask
from reft_lightning.stages.optim import OptimizerArgs, lr_factor


def test_sampler_resumes_the_same_order_after_the_samples_done() -> None:
    data = list(range(20))
    done = [0]
    sampler = ResumableSampler(data, num_replicas=1, rank=0, seed=3, samples_done=lambda: done[0])
    sampler.set_epoch(1)
    full = list(sampler)
    assert sorted(full) == data and len(sampler) == 20
    done[0] = 7
    assert list(sampler) == full[7:]
    done[0] = 20  # a checkpoint taken at the very end of the epoch starts the next one whole
    assert list(sampler) == full


def test_sampler_shards_are_disjoint_and_epoch_dependent() -> None:
    data = list(range(10))
    shards = [list(ResumableSampler(data, num_replicas=2, rank=r, seed=0)) for r in range(2)]
    assert set(shards[0]).isdisjoint(shards[1]) and sorted(shards[0] + shards[1]) == data
    sampler = ResumableSampler(data, num_replicas=1, rank=0, seed=0)
    first = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != first


@pytest.mark.parametrize(("items", "world"), [(5, 2), (7, 3), (2, 3), (6, 2), (0, 2)])
def test_eval_shards_hold_every_item_exactly_once(items: int, world: int) -> None:
    dataset = list(range(items))
    shards = [list(EvalShardSampler(dataset, num_replicas=world, rank=r)) for r in range(world)]
    assert sorted(i for shard in shards for i in shard) == dataset, "no item missing, none repeated"
    assert [len(EvalShardSampler(dataset, world, r)) for r in range(world)] == [len(s) for s in shards]
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert shards[0][:2] == dataset[: world * 2 : world], "rank 0 takes 0, W, 2W, ..."


def test_linear_schedule_with_warmup_by_hand() -> None:
    args = OptimizerArgs(schedule="linear", warmup_ratio=0.1)
    # 100 steps: warm-up over steps 0..9 reaching 1.0 at step 9, then linear decay to 0 at step 100.
    assert lr_factor(0, 100, args) == pytest.approx(0.1)
    assert lr_factor(9, 100, args) == pytest.approx(1.0)
    assert lr_factor(10, 100, args) == pytest.approx(1.0)
    assert lr_factor(55, 100, args) == pytest.approx(0.5)
    assert lr_factor(99, 100, args) == pytest.approx(1 / 90)


def test_cosine_and_constant_schedules_by_hand() -> None:
    cosine = OptimizerArgs(schedule="cosine", warmup_ratio=0.0, min_lr_ratio=0.1)
    assert lr_factor(0, 10, cosine) == pytest.approx(1.0)
    assert lr_factor(5, 10, cosine) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_factor(10, 10, cosine) == pytest.approx(0.1)
    constant = OptimizerArgs(schedule="constant", warmup_ratio=0.0)
    assert lr_factor(7, 10, constant) == 1.0


def test_response_mask_covers_tokens_up_to_and_including_first_eos() -> None:
    eos = 2
    ids = torch.tensor([[5, 6, 2, 0, 0], [5, 6, 7, 8, 9], [2, 2, 5, 0, 0]])
    assert response_mask(ids, eos).tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]


@pytest.mark.parametrize(
    ("field", "value"),
    [("lr", -1e-5), ("lr", 0.0), ("eps", 0.0), ("weight_decay", -0.1), ("warmup_ratio", 1.0),
     ("min_lr_ratio", 1.5), ("betas", (0.9, 1.0))],
)  # fmt: skip
def test_optimizer_args_refuse_out_of_range_values(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=rf"optimizer: {field}=.* out of range"):
        OptimizerArgs(**{field: value})
