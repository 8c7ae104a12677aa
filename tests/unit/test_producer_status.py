"""Lag, rate and ETA arithmetic, and the Prometheus rate query."""

from __future__ import annotations

import httpx
import pytest
from rich.console import Console

from producer.errors import StatusError
from producer.status import (
    PROMETHEUS_QUERY,
    LagSnapshot,
    PartitionLag,
    RateWindow,
    committed_between,
    eta_seconds,
    format_duration,
    prometheus_rate,
    render_status,
)

pytestmark = pytest.mark.timeout(30)


def snapshot(at: float, *rows: tuple[int | None, int, int]) -> LagSnapshot:
    """Partitions 0..n with (committed, low, high)."""
    return LagSnapshot(at, tuple(PartitionLag(i, *row) for i, row in enumerate(rows)))


def test_lag_counts_from_the_commit_or_the_earliest_retained_offset() -> None:
    assert PartitionLag(0, 40, 0, 100).lag == 60
    assert PartitionLag(0, None, 30, 100).lag == 70  # nothing committed yet
    assert PartitionLag(0, 10, 30, 100).lag == 70  # committed offset since deleted
    assert PartitionLag(0, 100, 0, 100).lag == 0
    assert snapshot(0.0, (40, 0, 100), (None, 0, 5)).backlog == 65


def test_rate_from_committed_offsets_over_the_window() -> None:
    window = RateWindow(window_s=60.0)
    assert window.rate() is None
    window.add(snapshot(0.0, (100, 0, 1000), (None, 0, 500)))
    window.add(snapshot(10.0, (150, 0, 1000), (20, 0, 500)))
    assert committed_between(snapshot(0, (100, 0, 9)), snapshot(1, (150, 0, 9))) == 50
    assert window.rate() == pytest.approx(7.0)  # (50 + 20) / 10 s
    window.add(snapshot(70.0, (750, 0, 1000), (20, 0, 500)))
    window.add(snapshot(80.0, (850, 0, 1000), (20, 0, 500)))
    assert window.rate() == pytest.approx(700 / 70)  # the first sample left the window


def test_eta_and_durations() -> None:
    assert eta_seconds(0, None) == 0.0
    assert eta_seconds(100, None) is None
    assert eta_seconds(100, 0.0) is None
    assert eta_seconds(100, 4.0) == 25.0
    assert format_duration(None) == "unknown"
    assert format_duration(7.4) == "7s"
    assert format_duration(245) == "4m 05s"
    assert format_duration(3723) == "1h 02m 03s"


def prometheus(handler: httpx.MockTransport) -> httpx.Client:
    """A client whose requests the handler answers."""
    return httpx.Client(transport=handler)


def test_prometheus_rate_parses_the_vector() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v1/query"
        assert request.url.params["query"] == PROMETHEUS_QUERY
        body = {"status": "success", "data": {"result": [{"metric": {}, "value": [1, "12.5"]}]}}
        return httpx.Response(200, json=body)

    with prometheus(httpx.MockTransport(answer)) as client:
        assert prometheus_rate("http://prom:9090/", client=client) == 12.5


def test_prometheus_empty_vector_is_zero_and_errors_are_status_errors() -> None:
    empty = httpx.MockTransport(lambda _: httpx.Response(200, json={"data": {"result": []}}))
    with prometheus(empty) as client:
        assert prometheus_rate("http://prom", client=client) == 0.0
    broken = httpx.MockTransport(lambda _: httpx.Response(503, text="down"))
    with prometheus(broken) as client, pytest.raises(StatusError, match="Prometheus at"):
        prometheus_rate("http://prom", client=client)


def test_render_shows_partitions_backlog_rate_and_eta() -> None:
    console = Console(width=100, record=True, force_terminal=False)
    shot = snapshot(0.0, (40, 0, 100), (None, 0, 20))
    console.print(render_status("requests", "workers", shot, 4.0, "committed offsets"))
    text = console.export_text()
    assert "requests · group workers" in text
    assert "backlog 80 · rate 4.00/s (committed offsets) · ETA 20s" in text
    assert " - " in text  # partition 1 has no committed offset
