"""GRPO / RLOO group baselines against a plain-Python reference."""

from __future__ import annotations

import random
import statistics

import pytest
import torch

from reft_lightning.rl.advantages import broadcast_to_tokens, group_advantages


def reference_group_advantages(
    scores: list[float], groups: list[int], method: str, eps: float
) -> list[float]:
    out = []
    for i, (score, group) in enumerate(zip(scores, groups)):
        members = [s for s, g in zip(scores, groups) if g == group]
        others = [s for j, (s, g) in enumerate(zip(scores, groups)) if g == group and j != i]
        if len(members) < 2:
            out.append(0.0)
        elif method == "rloo":
            out.append(score - sum(others) / len(others))
        else:
            out.append((score - statistics.mean(members)) / (statistics.stdev(members) + eps))
    return out


@pytest.mark.parametrize("method", ["grpo", "rloo"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ragged_groups_match_reference(seed: int, method: str) -> None:
    rng = random.Random(seed)
    groups = [rng.choice([11, 4, 7, 30]) for _ in range(15)]  # arbitrary ids, uneven sizes, maybe singletons
    groups[-1] = 99  # a singleton group: no baseline
    scores = [rng.choice([0.0, 0.1, 1.0]) + rng.random() * 0.01 for _ in groups]

    actual = group_advantages(torch.tensor(scores), torch.tensor(groups), method=method)  # type: ignore[arg-type]

    expected = reference_group_advantages(scores, groups, method, eps=1e-4)
    torch.testing.assert_close(
        actual.double(), torch.tensor(expected, dtype=torch.float64), rtol=1e-5, atol=1e-6
    )
    assert actual[-1].item() == 0.0


@pytest.mark.parametrize("method", ["grpo", "rloo"])
def test_matrix_form_equals_group_id_form(method: str) -> None:
    torch.manual_seed(0)
    scores = torch.rand(4, 3)
    matrix = group_advantages(scores, method=method)  # type: ignore[arg-type]
    ids = torch.arange(4).repeat_interleave(3)
    flat = group_advantages(scores.flatten(), ids, method=method)  # type: ignore[arg-type]
    assert matrix.shape == (4, 3)
    torch.testing.assert_close(matrix.flatten(), flat)


def test_hand_worked_rloo_and_grpo() -> None:
    # One question, scores (1, 0, 0, 1).  RLOO: 1 - (0 + 0 + 1) / 3 = 2/3 and 0 - (0 + 1 + 1) / 3 = -2/3.
    # GRPO: mean 0.5, unbiased std sqrt(4 * 0.25 / 3) = 0.5773503, so +-0.5 / 0.5773503 = +-0.8660254.
    scores = torch.tensor([[1.0, 0.0, 0.0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(
        group_advantages(scores, method="rloo"),
        torch.tensor([[2 / 3, -2 / 3, -2 / 3, 2 / 3]], dtype=torch.float64),
    )
    grpo = group_advantages(scores, method="grpo", eps=0.0)
    torch.testing.assert_close(
        grpo, torch.tensor([[0.8660254, -0.8660254, -0.8660254, 0.8660254]], dtype=torch.float64)
    )


def test_identical_scores_give_zero_advantage() -> None:
    for method in ("grpo", "rloo"):
        assert torch.equal(group_advantages(torch.ones(2, 4), method=method), torch.zeros(2, 4))  # type: ignore[arg-type]


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="group_ids"):
        group_advantages(torch.zeros(4))
    with pytest.raises(ValueError, match="group_ids"):
        group_advantages(torch.zeros(2, 2), torch.zeros(4))
    with pytest.raises(ValueError, match="method"):
        group_advantages(torch.zeros(2, 2), method="ppo")  # type: ignore[arg-type]


def test_broadcast_to_tokens() -> None:
    mask = torch.tensor([[0, 1, 1], [1, 0, 0], [0, 0, 0]])
    tokens = broadcast_to_tokens(torch.tensor([2.0, -1.0, 5.0]), mask)
    torch.testing.assert_close(tokens, torch.tensor([[0.0, 2.0, 2.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    with pytest.raises(ValueError):
        broadcast_to_tokens(torch.zeros(2), mask)
