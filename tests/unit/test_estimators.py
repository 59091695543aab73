"""pass@k and majority voting on hand-worked cases, and their per-question summary."""

from __future__ import annotations

import math

import pytest

from reft_lightning.evaluation import QuestionSamples, SamplingEvalArgs, majority_vote, pass_at_k
from reft_lightning.evaluation.sampling import summarise


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (4, 1, 1, 0.25),  # c / n
        (4, 1, 2, 0.5),  # 1 - C(3,2)/C(4,2) = 1 - 3/6
        (5, 2, 3, 0.9),  # 1 - C(3,3)/C(5,3) = 1 - 1/10
        (5, 0, 3, 0.0),  # nothing correct
        (5, 3, 3, 1.0),  # only 2 wrong samples: any 3 contain a correct one
        (8, 8, 8, 1.0),
        (32, 1, 8, 0.25),  # 1 - C(31,8)/C(32,8) = 8/32
    ],
)
def test_pass_at_k_hand_cases(n: int, c: int, k: int, expected: float) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_matches_the_binomial_formula() -> None:
    for n in range(1, 13):
        for c in range(n + 1):
            for k in range(1, n + 1):
                reference = 1.0 - math.comb(n - c, k) / math.comb(n, k)
                assert pass_at_k(n, c, k) == pytest.approx(reference, abs=1e-12), (n, c, k)


@pytest.mark.parametrize(("n", "c", "k"), [(4, 1, 5), (4, 1, 0), (4, 5, 2), (4, -1, 2)])
def test_pass_at_k_rejects_impossible_arguments(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ([3.0, 3.004, 5.0], 3.0),  # 3.004 votes with 3.0 (tolerance 1e-2)
        ([5.0, 3.0, 3.0, 5.0], 5.0),  # tie: the group seen first wins
        ([None, None, 2.0], 2.0),  # unparsable samples never vote
        ([None, None], None),
        ([], None),
        (["a", "b", "b"], "b"),
        ([1.0, "1.0", "1.0"], "1.0"),  # a number never groups with a string
        # 1.008 joins 1.0; 1.016 is 0.016 from 1.0, so it starts a group; the tie goes to 1.0
        ([1.0, 1.008, 1.016, 1.016], 1.0),
        ([1.016, 1.0, 1.008], 1.016),  # 1.008 matches both groups and joins the first, 1.016
    ],
)
def test_majority_vote_hand_cases(answers: list, expected: object) -> None:
    assert majority_vote(answers, tolerance=1e-2) == expected


def test_majority_vote_tolerance_is_a_parameter() -> None:
    # within 0.05, 2.04 votes with 2.0 and the 2-2 tie goes to the group seen first
    assert majority_vote([2.0, 2.5, 2.5, 2.04], tolerance=0.05) == 2.0
    assert majority_vote([2.0, 2.5, 2.5, 2.04], tolerance=1e-3) == 2.5


def test_summary_of_one_question() -> None:
    samples = QuestionSamples(
        texts=["a", "b", "c", "d"],
        answers=[2.0, 1.0, 2.0, None],
        scores=[1.0, 0.1, 1.0, 0.0],
        correct=[True, False, True, False],
    )
    summary = summarise(samples, SamplingEvalArgs(num_samples=4, pass_k=(1, 2, 4), vote_k=(2, 4)))
    assert summary.estimates == pytest.approx(
        {
            "pass@1": 0.5,
            "pass@2": 1 - 1 / 6,  # 1 - C(2,2)/C(4,2)
            "pass@4": 1.0,
            "voting@2": 1.0,  # [2.0, 1.0]: tie, 2.0 came first and is correct
            "voting@4": 1.0,  # 2.0 twice
        }
    )


def test_voting_follows_the_winning_sample_correctness() -> None:
    samples = QuestionSamples(
        texts=["a"] * 4, answers=[7.0, 3.0, 3.0, None], scores=[1.0, 0.1, 0.1, 0.0],
        correct=[True, False, False, False],
    )  # fmt: skip
    assert summarise(samples, SamplingEvalArgs(num_samples=4, vote_k=(1, 4))).estimates == {
        "pass@1": 0.25,
        "voting@1": 1.0,
        "voting@4": 0.0,
    }


@pytest.mark.parametrize("settings", [{"num_samples": 4, "pass_k": (5,)}, {"num_samples": 2, "vote_k": (0,)}])
def test_sampling_settings_reject_k_beyond_n(settings: dict) -> None:
    with pytest.raises(ValueError, match="num_samples"):
        SamplingEvalArgs(**settings)


def test_disabled_sampling_logs_no_estimates() -> None:
    assert SamplingEvalArgs().estimate_names == []
    assert SamplingEvalArgs(num_samples=8, pass_k=(1, 8), vote_k=(8,)).estimate_names == [
        "pass@1",
        "pass@8",
        "voting@8",
    ]
