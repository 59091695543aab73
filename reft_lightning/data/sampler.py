"""Samplers for several processes: a shuffling, sharding training sampler that resumes exactly in
the middle of an epoch, and an evaluation sampler that gives every question to exactly one process."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sized
from typing import TYPE_CHECKING, Any

from torch.utils.data import DataLoader, DistributedSampler

if TYPE_CHECKING:
    from lightning import Trainer


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` (order = f(seed, epoch), one shard per rank) that can start mid-epoch.

    Lightning leaves a ``DistributedSampler`` in place, so sharding and skipping stay exact on any
    number of processes. ``samples_done`` is asked at the start of every iteration how many samples
    of this rank's shard the current epoch has already trained on (non-zero only after a restart);
    the iteration starts after them.
    """

    def __init__(
        self,
        dataset: Sized,
        num_replicas: int,
        rank: int,
        seed: int,
        samples_done: Callable[[], int] | None = None,
        shuffle: bool = True,
    ) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
        self.samples_done = samples_done

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        skip = self.samples_done() if self.samples_done is not None else 0
        return iter(indices[skip:] if skip < len(indices) else indices)


class EvalShardSampler(DistributedSampler):
    """Rank ``r`` of ``W`` takes items ``r, r + W, r + 2W, ...`` in order: every item exactly once.

    Unlike ``DistributedSampler`` it never pads the last shard with repeated items (which would
    count those questions twice in accuracy, pass@k and predictions); shards differ in length by
    at most one. Evaluation has no per-batch collective, so uneven shards are safe. Lightning
    leaves a ``DistributedSampler`` in place.
    """

    def __init__(self, dataset: Sized, num_replicas: int, rank: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, len(self.dataset), self.num_replicas))

    def __len__(self) -> int:
        return len(range(self.rank, len(self.dataset), self.num_replicas))


def eval_loader(
    dataset: Sized,
    batch_size: int,
    trainer: Trainer | None,
    collate_fn: Callable[[list[Any]], Any],
    num_workers: int = 0,
) -> DataLoader:
    """An evaluation loader in dataset order, each item on exactly one of the trainer's processes."""
    world, rank = (1, 0) if trainer is None else (trainer.world_size, trainer.global_rank)
    sampler = EvalShardSampler(dataset, num_replicas=world, rank=rank)
    return DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate_fn, num_workers=num_workers
    )


def resumable_train_loader(
    dataset: Sized,
    batch_size: int,
    trainer: Trainer | None,
    seed: int,
    collate_fn: Callable[[list[Any]], Any],
    num_workers: int = 0,
) -> DataLoader:
    """A shuffled training loader that resumes exactly where a checkpoint left its epoch.

    Shards by the trainer's world size and rank. The skip is read from the fit loop's progress when
    each epoch's iteration begins: after ``--ckpt_path`` that is the restored count of completed
    batches (the dataloader itself is built before the loop state is restored).
    """
    if trainer is None:
        sampler = ResumableSampler(dataset, num_replicas=1, rank=0, seed=seed)
    else:
        progress = trainer.fit_loop.epoch_loop.batch_progress.current
        sampler = ResumableSampler(
            dataset, trainer.world_size, trainer.global_rank, seed, lambda: progress.completed * batch_size
        )
    return DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate_fn, num_workers=num_workers
    )
