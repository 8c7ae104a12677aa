"""Engine faults: hung requests, a burst of HTTP 500s, malformed replies (simulator faults)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from consumer.settings import RetrySettings
from tests.faults.outcomes import (
    PARTITIONS,
    TIME_SCALE,
    WORKER_ARGS,
    Accounting,
    OutcomeWatcher,
    assert_all_committed,
    publish,
    reasons,
    report,
)
from tests.integration.pipeline import Pipeline

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.slow]

TOTAL = 3000
Inject = Callable[..., dict[str, Any]]


def injected(engine_url: str) -> dict[str, int]:
    """How many requests each fault mode struck so far."""
    stats = httpx.get(f"{engine_url}/_simulator/stats", timeout=10).json()
    counts: dict[str, int] = stats["fault"]["injected"]
    return counts


def run_until_done(watcher: OutcomeWatcher, pipeline: Pipeline, timeout: float) -> Accounting:
    """Waits for every request's outcome and the commits, then checks the invariant."""
    try:
        assert watcher.wait_distinct(TOTAL, timeout), f"{watcher.distinct()} of {TOTAL} finished"
        assert_all_committed(pipeline, PARTITIONS)
    finally:
        watcher.close()
    return Accounting.of(watcher.outcomes(), TOTAL)


@pytest.mark.timeout(400)
def test_engine_hang_of_10s_loses_nothing_and_dead_letters_nothing(
    engine_factory: Callable[..., str],
    fault_pipeline: Callable[..., Pipeline],
    inject_fault: Inject,
) -> None:
    url = engine_factory("vllm", "--time-scale", TIME_SCALE)
    pipeline = fault_pipeline(url, PARTITIONS)
    publish(pipeline, TOTAL)
    watcher = OutcomeWatcher(pipeline.bootstrap, pipeline.topics.results, pipeline.topics.dlq)
    # A hung call ends only by the client's timeout: 3 s instead of the default 600 s.
    worker = pipeline.worker(*WORKER_ARGS, env={"EVALSTREAM_ENGINE__TIMEOUT_S": "3"})
    assert watcher.wait_distinct(800, 120)
    inject_fault(url, "hang", duration_s=10.0)
    ended = time.time() + 10.0
    accounting = run_until_done(watcher, pipeline, 300)
    assert injected(url)["hang"] > 0
    assert worker.metric("evalstream_retries_total", reason="timeout") > 0
    assert accounting.dead_letters == {}
    assert {o.status for o in accounting.outcomes} == {"ok"}
    report(
        "engine_hang_10s",
        TOTAL,
        accounting.duplicates,
        accounting.recovery_s(ended),
        hung_calls=injected(url)["hang"],
        retries=worker.metric("evalstream_retries_total"),
    )


DEFAULT_ATTEMPTS = RetrySettings().max_attempts
# Full-jitter backoff over 19 retries (0.5 s doubling, capped at 30 s) outlasts a 30 s outage
# unless the draws are absurdly small (about one chance in 10^10 per request).
PATIENT_ATTEMPTS = 20


@pytest.mark.timeout(400)
@pytest.mark.parametrize(
    "max_attempts", [DEFAULT_ATTEMPTS, PATIENT_ATTEMPTS], ids=["default-cap", "cap-20"]
)
def test_engine_500s_for_30s_lose_nothing(
    engine_factory: Callable[..., str],
    fault_pipeline: Callable[..., Pipeline],
    inject_fault: Inject,
    max_attempts: int,
) -> None:
    """The engine answers 500 to everything for 30 s while its /health stays 200.

    The failure policy cannot tell this from a request the engine fails every time, so it
    retries each request ``retry.max_attempts`` times with full-jitter backoff and then
    dead-letters it as ``retries_exhausted:http_500``, its original bytes kept for a replay.
    That is the expectation asserted: no loss, no other reason, no dead letter before its
    cap of counted attempts or after the outage's last backoff; with a cap whose backoff
    outlasts the outage, none at all. The default cap's count is reported.
    """
    url = engine_factory("vllm", "--time-scale", TIME_SCALE)
    pipeline = fault_pipeline(url, PARTITIONS)
    publish(pipeline, TOTAL)
    watcher = OutcomeWatcher(pipeline.bootstrap, pipeline.topics.results, pipeline.topics.dlq)
    env = {"EVALSTREAM_RETRY__MAX_ATTEMPTS": str(max_attempts)}
    worker = pipeline.worker(*WORKER_ARGS, env=env)
    assert watcher.wait_distinct(800, 120)
    started = time.time()
    inject_fault(url, "error500", duration_s=30.0)
    ended = started + 30.0
    accounting = run_until_done(watcher, pipeline, 300)
    assert injected(url)["error500"] > 0
    assert worker.metric("evalstream_circuit_open") == 0, "a 500 is not the engine being down"
    dead = [o for o in accounting.outcomes if o.kind == "dead_letter"]
    assert {o.reason for o in dead} <= {"retries_exhausted:http_500"}
    assert {o.attempts for o in dead} <= {max_attempts}
    # Only requests of the outage: the last one follows its end by one backoff (30 s) at most.
    assert all(started <= o.created_s <= ended + 30.0 for o in dead)
    if max_attempts >= PATIENT_ATTEMPTS:
        assert dead == []
    results = [o for o in accounting.outcomes if o.kind == "result"]
    assert {o.status for o in results} == {"ok"}
    report(
        f"engine_500s_30s_max_attempts_{max_attempts}",
        TOTAL,
        accounting.duplicates,
        accounting.recovery_s(ended),
        dead_letters=len(dead),
        outcomes=reasons(accounting.outcomes),
        http_500s=injected(url)["error500"],
        most_attempts_used=max(o.attempts for o in accounting.outcomes),
    )


@pytest.mark.timeout(400)
def test_malformed_replies_become_error_results_not_losses(
    engine_factory: Callable[..., str],
    fault_pipeline: Callable[..., Pipeline],
    inject_fault: Inject,
) -> None:
    url = engine_factory("vllm", "--time-scale", TIME_SCALE)
    pipeline = fault_pipeline(url, PARTITIONS)
    publish(pipeline, TOTAL)
    inject_fault(url, "malformed", rate=0.3)  # for the whole run
    watcher = OutcomeWatcher(pipeline.bootstrap, pipeline.topics.results, pipeline.topics.dlq)
    worker = pipeline.worker(*WORKER_ARGS)
    accounting = run_until_done(watcher, pipeline, 300)
    assert accounting.dead_letters == {}
    statuses = {(o.status, o.reason) for o in accounting.outcomes}
    # A cut-off reply gets one repair attempt; a second one makes an error result.
    assert statuses == {("ok", ""), ("error", "invalid_output")}
    assert worker.metric("evalstream_retries_total", reason="invalid_output") > 0
    report(
        "engine_malformed_30pct",
        TOTAL,
        accounting.duplicates,
        accounting.longest_stall_s(),
        outcomes=reasons(accounting.outcomes),
        malformed_replies=injected(url)["malformed"],
    )
