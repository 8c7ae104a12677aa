"""The useful share: a valid reply that says nothing is counted as such."""

from __future__ import annotations

from typing import Any

import pytest

from producer.usefulness import is_useful, usefulness

SAYS_SOMETHING = {
    "strengths": ["Runs Kafka in production"],
    "concerns": ["No Rust experience"],
    "summary": "A solid streaming engineer with a short gap.",
    "score": 70,
    "recommendation": "yes",
}


def result(evaluation: dict[str, Any] | None, status: str = "ok") -> dict[str, Any]:
    return {"id": "r", "status": status, "evaluation": evaluation}


@pytest.mark.parametrize(
    "change",
    [
        {"strengths": []},
        {"concerns": []},
        {"strengths": ["Python"]},  # one word: a keyword, not a reason
        {"concerns": ["        "]},
        {"summary": "Good fit."},
        {"summary": "1234 5678 9012 3456 7890"},  # no words of letters
    ],
)
def test_a_reply_missing_a_reason_is_not_useful(change: dict[str, Any]) -> None:
    assert is_useful(SAYS_SOMETHING)
    assert not is_useful(SAYS_SOMETHING | change)


def test_share_counts_errors_and_spread_comes_from_useful_replies() -> None:
    results = [
        result(SAYS_SOMETHING | {"score": 70}),
        result(SAYS_SOMETHING | {"score": 70}),
        result(SAYS_SOMETHING | {"score": 40}),
        result(SAYS_SOMETHING | {"strengths": [], "score": 0}),  # valid, says nothing
        result(None, status="error"),
        {"custom_id": "batch line", "response": {}},  # not a native result: not counted
    ]
    measured = usefulness(results)
    assert (measured.results, measured.ok, measured.useful) == (5, 4, 3)
    assert measured.useful_share == pytest.approx(3 / 5)
    assert measured.distinct_scores == 2
    assert measured.top_score_share == pytest.approx(2 / 3)
    assert measured.score_stdev == pytest.approx(14.142, abs=1e-3)


def test_no_results_measure_zero() -> None:
    measured = usefulness([])
    assert (measured.results, measured.useful_share, measured.top_score_share) == (0, 0.0, 0.0)
