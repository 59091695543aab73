"""A shuffling, sharding sampler that resumes exactly in the middle of an epoch."""

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
