"""informative_groups: DAPO's test for groups of samples whose scores differ, on hand-worked cases."""

from __future__ import annotations

import pytest
import torch

from reft_lightning.rl.advantages import informative_groups


def test_uniform_groups_of_each_score_level_are_dropped_and_mixed_ones_kept() -> None:
    scores = torch.tensor([
        [1.0, 1.0, 1.0],  # all correct: no signal
        [0.0, 0.0, 0.0],  # all without an answer: no signal
        [0.1, 0.1, 0.1],  # all wrong answers: no signal
        [1.0, 0.1, 1.0],  # mixed
        [0.0, 0.0, 0.1],  # mixed, one sample differs
    ])  # fmt: skip
    expected = torch.tensor([False] * 9 + [True] * 6)
    assert torch.equal(informative_groups(scores), expected)


def test_flat_scores_with_group_size_equal_the_matrix_form() -> None:
    scores = torch.tensor([0.1, 0.1, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0])
    flat = informative_groups(scores, group_size=2)
    assert torch.equal(flat, torch.tensor([False, False, True, True, False, False, False, False]))
    assert torch.equal(flat, informative_groups(scores.view(4, 2)))
    assert flat.dtype == torch.bool and flat.shape == (8,)


def test_float_scores_equal_up_to_rounding_count_as_uniform() -> None:
    # In float64 0.3 - 0.2 is 0.09999999999999998, not 0.1; a group of these two has no signal.
    almost = 0.3 - 0.2
    assert almost != 0.1
    scores = torch.tensor([[0.1, almost], [0.1, 0.1], [0.1, 0.1 + 1e-3]], dtype=torch.float64)
    assert informative_groups(scores).tolist() == [False, False, False, False, True, True]
    # atol sets what counts as equal: 0 demands exact equality, a large one merges 0.1 and 0.101.
    assert informative_groups(scores, atol=0.0).tolist() == [True, True, False, False, True, True]
    assert not informative_groups(scores, atol=1e-2).any()


def test_one_sample_groups_and_nan_scores_count_as_uniform() -> None:
    assert not informative_groups(torch.tensor([1.0, 0.0, 0.1]), group_size=1).any()
    with_nan = torch.tensor([[float("nan"), 1.0], [0.0, 1.0]])
    assert informative_groups(with_nan).tolist() == [False, False, True, True]


def test_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match="group_size"):
        informative_groups(torch.zeros(4))
    with pytest.raises(ValueError, match="group_size"):
        informative_groups(torch.zeros(2, 2), group_size=2)
    with pytest.raises(ValueError, match="groups of 3"):
        informative_groups(torch.zeros(4), group_size=3)
    with pytest.raises(ValueError, match="at least one"):
        informative_groups(torch.zeros(3, 0))
