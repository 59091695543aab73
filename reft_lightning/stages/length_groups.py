"""Rows of a rollout batch in groups of similar length, each cut to the columns its rows use.

A rollout batch is ``[N, P + R]``: prompts left-padded to the longest prompt ``P``, responses
right-padded to the longest response ``R``. A forward over a group of rows needs only the columns
from the group's earliest attended prompt token to the end of its longest response; the rest is
padding in every row of the group, which attention masks out and every loss and statistic of the
PPO iteration masks too. Sorting the rows by their real length before grouping makes groups carry
little padding; smaller groups also keep activations in the CPU's caches (both measured in
``docs/results/performance.md``). Results agree with one forward over the whole batch up to float
rounding (``tests/unit/test_length_groups.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class RowGroup:
    """Some rows of a batch of ``P`` prompt and ``R`` response columns, and the columns they use."""

    rows: list[int]
    """Row indices into the batch, shortest first."""
    start: int
    """First column of the ``[N, P + R]`` sequences that any of these rows attends to (at most ``P - 1``)."""
    prompt_length: int
    """``P``, the batch's prompt columns."""
    response_length: int
    """Response columns in use: the longest response of these rows (at least 1)."""

    @property
    def sequence_columns(self) -> slice:
        """The columns of ``[N, P + R]`` tensors (sequences, attention) this group uses."""
        return slice(self.start, self.prompt_length + self.response_length)

    @property
    def response_columns(self) -> slice:
        """The columns of ``[N, R]`` tensors (response tokens, masks, per-token values) it uses."""
        return slice(0, self.response_length)

    def index(self, device: torch.device) -> torch.Tensor:
        """``rows`` as an index tensor on ``device``."""
        return torch.tensor(self.rows, device=device)


@dataclass(frozen=True)
class PaddingExtents:
    """Where each row's real tokens lie in a batch of left-padded prompts and right-padded responses.

    Host integers, read from the device in one transfer (:meth:`of`), so that grouping and cutting
    cost no further synchronisation.
    """

    prompt_length: int
    """``P``: prompt columns of the batch."""
    starts: list[int]
    """Per row, the first prompt column it attends to (``P`` for an empty prompt)."""
    response_lengths: list[int]
    """Per row, the index after its last response token in the mask (0 for an empty response)."""

    @classmethod
    def of(cls, attention: torch.Tensor, response_mask: torch.Tensor) -> PaddingExtents:
        """From ``attention`` ``[N, P + R]`` and ``response_mask`` ``[N, R]`` (nonzero on real tokens)."""
        prompt_length = attention.shape[1] - response_mask.shape[1]
        end = torch.ones(len(attention), 1, dtype=torch.bool, device=attention.device)
        attended = torch.cat([attention[:, :prompt_length] != 0, end], dim=1)
        first = attended.int().argmax(dim=1)  # the appended column: P for a row with no prompt token
        used = torch.cat([end, response_mask != 0], dim=1)
        lengths = used.shape[1] - 1 - used.flip(dims=[1]).int().argmax(dim=1)  # 0 for an empty response
        starts, response_lengths = torch.stack([first, lengths]).tolist()
        return cls(prompt_length, starts, response_lengths)

    def groups(self, rows: Sequence[int], size: int | None) -> list[RowGroup]:
        """``rows`` sorted by real length (prompt plus response tokens; ties keep their order) and cut
        into groups of ``size`` (``None``: one group), each with the columns its rows use."""
        lengths = [self.prompt_length - self.starts[r] + self.response_lengths[r] for r in rows]
        ordered = [row for _, row in sorted(zip(lengths, rows), key=lambda pair: pair[0])]
        size = size or max(len(ordered), 1)
        groups = []
        for first in range(0, len(ordered), size):
            members = ordered[first : first + size]
            start = min(min(self.starts[r] for r in members), self.prompt_length - 1)
            length = max(max(self.response_lengths[r] for r in members), 1)
            groups.append(RowGroup(members, max(start, 0), self.prompt_length, length))
        return groups


def in_groups(
    extents: PaddingExtents,
    size: int | None,
    forward: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor | None, ...]],
    sequences: torch.Tensor,
    attention: torch.Tensor,
    response_ids: torch.Tensor,
) -> tuple[torch.Tensor | None, ...]:
    """``forward(sequences, attention, response_ids)`` on each group of :meth:`PaddingExtents.groups`
    (all rows, ``size`` per group), its ``[n, r]`` outputs put back together as ``[N, R]`` tensors,
    zero in the columns a group left out. An output that is ``None`` stays ``None``."""
    count, width = response_ids.shape
    assembled: list[torch.Tensor | None] = []
    for number, group in enumerate(extents.groups(range(count), size)):
        index, columns = group.index(response_ids.device), group.sequence_columns
        outputs = forward(
            sequences[index, columns], attention[index, columns], response_ids[index, group.response_columns]
        )
        if number == 0:
            assembled = [
                None if out is None else out.new_zeros((count, width, *out.shape[2:])) for out in outputs
            ]
        for whole, out in zip(assembled, outputs):
            if whole is not None and out is not None:
                whole[index, group.response_columns] = out
    return tuple(assembled)
