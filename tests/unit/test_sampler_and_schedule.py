"""Resumable sampler, learning-rate schedule and response masks, against hand-worked values."""

from __future__ import annotations

import math

import pytest
import torch

from reft_lightning.data.sampler import EvalShardSampler, ResumableSampler
from reft_lightning.generation import response_mask
from reft_lightning.stages.optim import OptimizerArgs, build_optimizer, lr_factor


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


def test_fused_adamw_takes_the_same_steps_as_the_default_within_float_rounding() -> None:
    """``optimizer.fused`` picks torch's fused AdamW kernel; three steps (weight decay, two groups with
    their own lr) match the default implementation's."""
    results, starts = [], []
    for fused in (False, True):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 1))
        starts.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
        groups = [{"params": model[0].parameters()}, {"params": model[1].parameters(), "lr": 1e-2}]
        args = OptimizerArgs(lr=1e-3, weight_decay=0.1, schedule="constant", warmup_ratio=0.0, fused=fused)
        optimizer, _ = build_optimizer(groups, args, total_steps=3)
        assert optimizer.defaults["fused"] is (True if fused else None)
        for step in range(3):
            model(torch.full((2, 4), float(step + 1))).square().sum().backward()
            optimizer.step()
            optimizer.zero_grad()
        results.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(starts[0], starts[1]) and (results[0] - starts[0]).abs().min() > 1e-4  # all moved
    torch.testing.assert_close(results[1], results[0], atol=1e-6, rtol=1e-5)
