"""ResultStats: quantiles, score histogram, latency, throughput and the rendered summary."""

from __future__ import annotations

import json
import statistics
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumer.schemas import parse_result
from producer.result_view import ResultView
from producer.summary import ResultStats, decile_histogram, quantile
from tests.unit.test_producer_results import T0, batch_output, encode, native_result

pytestmark = pytest.mark.timeout(60)


@given(st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=50))
def test_quantile_matches_statistics_inclusive_method(values: list[float]) -> None:
    ordered = sorted(values)
    expected = statistics.quantiles(ordered, n=100, method="inclusive")
    for percent in (1, 25, 50, 95, 99):
        assert quantile(ordered, percent / 100) == pytest.approx(
            expected[percent - 1], rel=1e-9, abs=1e-6
        )


def test_quantile_edges() -> None:
    assert quantile([3.0], 0.99) == 3.0
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert quantile([1.0, 2.0], 1.0) == 2.0
    with pytest.raises(ValueError, match="no values"):
        quantile([], 0.5)


def test_decile_histogram_puts_100_in_the_last_bucket() -> None:
    assert decile_histogram([0, 9, 10, 55, 89, 90, 99, 100]) == [2, 1, 0, 0, 0, 1, 0, 0, 1, 3]


def add(stats: ResultStats, raw: dict[str, object], offset_s: float = 0.0) -> None:
    """Counts one result, stamping batch lines ``offset_s`` after T0."""
    stamp = T0 + timedelta(seconds=offset_s)
    stats.add(ResultView.of(parse_result(encode(raw)), stamp))


def sample_stats() -> ResultStats:
    """Nine native results over 8 s, two errors, one batch line."""
    stats = ResultStats()
    for index in range(7):
        done = T0 + timedelta(seconds=index)
        add(
            stats,
            native_result(
                f"r{index}", score=index * 15, end_to_end_s=index + 1.0, completed_at=done
            ),
        )
    add(
        stats,
        native_result(
            "e1",
            status="error",
            reason="timeout",
            end_to_end_s=30.0,
            completed_at=T0 + timedelta(seconds=8),
        ),
    )
    add(
        stats,
        native_result(
            "e2", status="error", reason="invalid_output", completed_at=T0 + timedelta(seconds=2)
        ),
    )
    add(stats, batch_output("b1", score=100), offset_s=4)
    return stats


def test_stats_count_statuses_reasons_scores_and_latency() -> None:
    stats = sample_stats()
    summary = stats.to_dict()
    assert summary["distinct"] == 10
    assert summary["status"] == {"error": 2, "ok": 8}
    assert summary["error_reasons"] == {"timeout": 1, "invalid_output": 1}
    score = summary["score"]
    assert (score["count"], score["min"], score["max"]) == (8, 0, 100)
    assert score["quantiles"]["p50"] == 52.5
    assert sum(score["histogram"].values()) == 8
    assert score["histogram"]["90-100"] == 2
    latency = summary["latency_s"]
    assert latency["count"] == 9  # the batch line has no timings
    assert latency["p50"] == 4.0
    assert latency["p99"] == pytest.approx(28.0, rel=0.05)


def test_throughput_spans_first_to_last_completion() -> None:
    stats = sample_stats()
    assert stats.span_s == 8.0
    assert stats.throughput == pytest.approx(9 / 8)
    single = ResultStats()
    add(single, native_result("only"))
    assert single.throughput is None


def test_render_and_json_agree() -> None:
    stats = sample_stats()
    stats.duplicates, stats.invalid = 4, 1
    text = stats.render()
    assert "10 distinct · 4 duplicates dropped · 1 invalid" in text
    assert "ok 8 · error 2 (timeout 1, invalid_output 1)" in text
    assert "p50 4.000 s" in text
    assert "1.12 results/s over 8.0 s" in text
    assert text.count("█") > 0
    json.dumps(stats.to_dict())  # JSON-ready all the way down


def test_empty_stats_render_without_sections() -> None:
    stats = ResultStats()
    assert "score" not in stats.render()
    assert stats.to_dict()["latency_s"] == {"count": 0}
