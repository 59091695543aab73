"""Where each row's tokens lie, and rows grouped by length with the columns they use (worked by hand)."""

from __future__ import annotations

import torch

from reft_lightning.stages.length_groups import PaddingExtents, RowGroup, in_groups

# Three prompt columns, three response columns (1 = a real token).
ATTENTION = torch.tensor([
    [0, 1, 1, 1, 1, 0],  # prompt of 2, response of 2
    [1, 1, 1, 1, 1, 1],  # prompt of 3, response of 3
    [0, 0, 1, 1, 0, 0],  # prompt of 1, response of 1
    [0, 1, 1, 0, 0, 0],  # prompt of 2, empty response
])  # fmt: skip
MASK = ATTENTION[:, 3:]


def test_extents_give_each_rows_first_prompt_column_and_response_length() -> None:
    extents = PaddingExtents.of(ATTENTION, MASK)
    assert extents.prompt_length == 3
    assert extents.starts == [1, 0, 2, 1]
    assert extents.response_lengths == [2, 3, 1, 0]


def test_a_row_without_prompt_tokens_starts_after_the_prompt_and_no_prompt_columns_is_allowed() -> None:
    extents = PaddingExtents.of(torch.tensor([[0, 0, 1]]), torch.tensor([[1]]))
    assert (extents.starts, extents.response_lengths) == ([2], [1])
    extents = PaddingExtents.of(torch.ones(2, 3), torch.tensor([[1, 1, 0], [1, 0, 0]]))
    assert (extents.prompt_length, extents.starts, extents.response_lengths) == (0, [0, 0], [2, 1])


def test_groups_sort_rows_by_length_and_keep_the_columns_their_rows_use() -> None:
    extents = PaddingExtents.of(ATTENTION, MASK)  # real lengths: 4, 6, 2, 2
    groups = extents.groups([0, 1, 2, 3], size=2)
    assert groups == [RowGroup([2, 3], start=1, prompt_length=3, response_length=1),
                      RowGroup([0, 1], start=0, prompt_length=3, response_length=3)]  # fmt: skip
    assert groups[0].sequence_columns == slice(1, 4)
    assert groups[0].response_columns == slice(0, 1)
    assert extents.groups([1, 0], size=None) == [RowGroup([0, 1], 0, 3, 3)]
    assert extents.groups([3], size=4) == [RowGroup([3], 1, 3, 1)], "at least one response column"
    assert extents.groups([2, 3, 0], size=1)[0].rows == [2], "ties keep the given order"


def test_in_groups_puts_each_groups_outputs_back_in_its_rows_with_zeros_elsewhere() -> None:
    sequences = torch.arange(24).reshape(4, 6)
    calls: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def forward(part: torch.Tensor, attention: torch.Tensor, response: torch.Tensor) -> tuple:
        calls.append((part, attention, response))
        return response.float() + 0.5, None

    extents = PaddingExtents.of(ATTENTION, MASK)
    values, nothing = in_groups(extents, 2, forward, sequences, ATTENTION, sequences[:, 3:])
    assert nothing is None
    # group [2, 3]: columns 1..3 of the sequences, 1 response column; then group [0, 1], all columns
    (part, attention, response), (whole, _, _) = calls
    assert torch.equal(part, torch.tensor([[13, 14, 15], [19, 20, 21]]))
    assert torch.equal(attention, torch.tensor([[0, 1, 1], [1, 1, 0]]))
    assert torch.equal(response, torch.tensor([[15], [21]]))
    assert torch.equal(whole, sequences[:2])
    expected = torch.tensor([[3.5, 4.5, 5.5], [9.5, 10.5, 11.5], [15.5, 0, 0], [21.5, 0, 0]])
    torch.testing.assert_close(values, expected)
