"""masked_mean / masked_var / masked_whiten against float64 references, locally and across 2 processes."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from reft_lightning.rl.gae import masked_mean, masked_var, masked_whiten

from . import reference


@pytest.mark.parametrize("shift_mean", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_reference_on_ragged_batches(seed: int, shift_mean: bool) -> None:
    rng = random.Random(seed)
    torch.manual_seed(seed)
    mask = reference.ragged_mask(rng, batch=10, length=20)
    x = 3.0 * torch.randn(10, 20) + 1.5

    kept = reference.masked_values(reference.to_rows(x), reference.to_rows(mask))
    assert masked_mean(x, mask).item() == pytest.approx(reference.mean(kept), rel=1e-6)
    assert masked_var(x, mask).item() == pytest.approx(reference.unbiased_var(kept), rel=1e-6)
    expected = reference.whiten(reference.to_rows(x), reference.to_rows(mask), shift_mean)
    actual = masked_whiten(x, mask, shift_mean=shift_mean)
    torch.testing.assert_close(
        actual.double(), torch.tensor(expected, dtype=torch.float64), rtol=1e-5, atol=1e-6
    )
    assert actual.dtype == x.dtype


def test_hand_worked_example() -> None:
    # Masked values 1, 2, 3, 6 (the 100 and -50 are masked out): mean = 12 / 4 = 3,
    # squared deviations 4, 1, 0, 9 sum to 14, unbiased variance 14 / 3, std = 2.1602469.
    # Whitened: -2 / 2.1602469 = -0.9258201, -1 / ... = -0.4629100, 0, 3 / ... = 1.3887301.
    x = torch.tensor([[100.0, 1.0, 2.0], [3.0, 6.0, -50.0]], dtype=torch.float64)
    mask = torch.tensor([[0, 1, 1], [1, 1, 0]])

    assert masked_mean(x, mask).item() == pytest.approx(3.0)
    assert masked_var(x, mask).item() == pytest.approx(14.0 / 3.0)
    assert masked_var(x, mask, unbiased=False).item() == pytest.approx(14.0 / 4.0)
    expected = torch.tensor([[0.0, -0.9258201, -0.4629100], [0.0, 1.3887301, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(masked_whiten(x, mask), expected, rtol=0, atol=1e-7)
    shifted = torch.tensor([[0.0, 2.0741799, 2.5370900], [3.0, 4.3887301, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(masked_whiten(x, mask, shift_mean=True), shifted, rtol=0, atol=1e-7)


def test_degenerate_masks_give_zeros_not_nan() -> None:
    x = torch.randn(2, 3)
    assert masked_mean(x, torch.zeros(2, 3)).item() == 0.0
    assert masked_var(x, torch.zeros(2, 3)).item() == 0.0
    assert torch.equal(masked_whiten(x, torch.zeros(2, 3)), torch.zeros(2, 3))
    one = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    assert masked_var(x, one).item() == 0.0
    assert torch.equal(masked_whiten(x, one), torch.zeros(2, 3))


def test_non_finite_masked_out_values_are_ignored() -> None:
    x = torch.tensor([[float("nan"), 1.0, 2.0], [float("inf"), 4.0, -float("inf")]])
    mask = torch.tensor([[0, 1, 1], [0, 1, 0]], dtype=torch.bool)
    clean = torch.where(mask, x, 0.0)
    torch.testing.assert_close(masked_whiten(x, mask), masked_whiten(clean, mask))
    assert masked_mean(x, mask).item() == pytest.approx(7.0 / 3.0)


class ThreadAllReduce:
    """Simulates ``world`` processes with threads: each rank's call returns the sum over all ranks."""

    def __init__(self, world: int) -> None:
        self.barrier = threading.Barrier(world)
        self.slots: list[torch.Tensor | None] = [None] * world

    def for_rank(self, rank: int) -> Callable[[torch.Tensor], torch.Tensor]:
        def all_reduce(tensor: torch.Tensor) -> torch.Tensor:
            self.slots[rank] = tensor.clone()
            self.barrier.wait(timeout=10)
            total = torch.stack([slot for slot in self.slots if slot is not None]).sum(dim=0)
            self.barrier.wait(timeout=10)
            return total

        return all_reduce


@pytest.mark.parametrize("split", [5, 2, 0])
def test_all_reduce_over_two_processes_equals_whitening_the_concatenation(split: int) -> None:
    rng = random.Random(7)
    torch.manual_seed(7)
    mask = reference.ragged_mask(rng, batch=8, length=12)
    x = 2.0 * torch.randn(8, 12) - 0.5
    shards = [(x[:split], mask[:split]), (x[split:], mask[split:])]
    if split == 0:  # rank 0 holds a batch whose rows all lack response tokens
        shards[0] = (x[:3], torch.zeros(3, 12))
    reducer = ThreadAllReduce(world=2)

    def run(rank: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        shard_x, shard_mask = shards[rank]
        all_reduce = reducer.for_rank(rank)
        return (
            masked_whiten(shard_x, shard_mask, all_reduce=all_reduce),
            masked_mean(shard_x, shard_mask, all_reduce=all_reduce),
            masked_var(shard_x, shard_mask, all_reduce=all_reduce),
        )

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run, [0, 1]))

    all_x = torch.cat([shard[0] for shard in shards])
    all_mask = torch.cat([shard[1] for shard in shards])
    torch.testing.assert_close(torch.cat([r[0] for r in results]), masked_whiten(all_x, all_mask))
    for _, mean, var in results:
        torch.testing.assert_close(mean, masked_mean(all_x, all_mask))
        torch.testing.assert_close(var, masked_var(all_x, all_mask))
    if split == 0:  # the empty rank contributes nothing and gets zeros
        assert torch.equal(results[0][0], torch.zeros(3, 12))
    else:  # the global statistics really differ from each shard's own (else the test proves nothing)
        assert not torch.allclose(results[1][0], masked_whiten(*shards[1]))
