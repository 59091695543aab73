"""A shuffling, sharding sampler that can resume in the middle of an epoch."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sized
from typing import TYPE_CHECKING, Any

from torch.utils.data import DataLoader, DistributedSampler

if TYPE_CHECKING:
    from lightning import Trainer


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` (order = f(seed, epoch), one shard per rank) that can skip ahead.

    Lightning leaves a ``DistributedSampler`` in place, so the sharding and the skip stay exact
    on any number of processes. After a mid-epoch restart, :meth:`skip_next` drops the samples this
    rank already trained on in the current epoch; the skip applies to the next iteration only.
    """

    def __init__(self, dataset: Sized, num_replicas: int, rank: int, seed: int, shuffle: bool = True) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
        self._skip = 0

    def skip_next(self, samples: int) -> None:
        """Start the next iteration ``samples`` positions into this rank's shard."""
        self._skip = samples

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())[self._skip :]
        self._skip = 0
        return iter(indices)

    def __len__(self) -> int:
        return self.num_samples - self._skip


def resumable_train_loader(
    dataset: Sized,
    batch_size: int,
    trainer: Trainer | None,
    seed: int,
    collate_fn: Callable[[list[Any]], Any],
    num_workers: int = 0,
) -> DataLoader:
    """A shuffled training loader that resumes exactly where a checkpoint left its epoch.

    Shards by the trainer's world size and rank; after ``--ckpt_path`` it skips the batches the
    restored loop state says were already completed in the current epoch.
    """
    world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
    sampler = ResumableSampler(dataset, num_replicas=world, rank=rank, seed=seed)
    if trainer is not None and trainer.ckpt_path is not None:
        done = trainer.fit_loop.epoch_loop.batch_progress.current.completed * batch_size
        if done < sampler.num_samples:
            sampler.skip_next(done)
    return DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate_fn, num_workers=num_workers
    )
