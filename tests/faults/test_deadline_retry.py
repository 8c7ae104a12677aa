"""A deadline that passes while the engine fails: the request is not retried, it expires.

The engine answers every call with HTTP 500 (a retriable error) and the retry cap is out of
reach, so without a deadline the worker would retry for ever. Each request carries a deadline a
few seconds out; once it has passed, the next retry must not reach the engine: the request gets
a result with status ``error`` and reason ``expired`` (README, "Deadlines"), and its offset is
committed like any other.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from consumer.deadlines import HEADER
from tests.faults.outcomes import (
    WORKER_ARGS,
    Accounting,
    OutcomeWatcher,
    assert_all_committed,
    request_id,
    request_value,
)
from tests.integration.pipeline import Pipeline, Worker, produce, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.faults]

TOTAL = 12
PARTITIONS = 2
# Request i expires (i + 1) steps after publication: the earliest soon, the latest late enough
# that a worker on a loaded machine has sent some request before its deadline.
STEP_MS = 2000
# Far beyond what the test's deadlines allow: only the deadline can end the retries.
RETRY = {
    "EVALSTREAM_RETRY__MAX_ATTEMPTS": "1000000",
    "EVALSTREAM_RETRY__BACKOFF_INITIAL_S": "0.05",
    "EVALSTREAM_RETRY__BACKOFF_MAX_S": "0.2",
}


def engine_calls(engine_url: str) -> int:
    """Generation requests the simulator received so far."""
    stats: dict[str, Any] = httpx.get(f"{engine_url}/_simulator/stats", timeout=10).json()
    return int(stats["received"])


def ready(worker: Worker) -> bool:
    """Whether the worker's ``/readyz`` answers 200 (assigned, engine up)."""
    try:
        url = f"http://127.0.0.1:{worker.metrics_port}/readyz"
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.timeout(300)
def test_a_deadline_passed_during_retries_stops_them_and_expires_the_request(
    engine_factory: Callable[..., str],
    fault_pipeline: Callable[..., Pipeline],
    inject_fault: Callable[..., dict[str, Any]],
) -> None:
    engine = engine_factory("instant")
    inject_fault(engine, "error500")  # every generation call, until the test ends
    pipeline = fault_pipeline(engine, PARTITIONS)
    topics = pipeline.topics
    watcher = OutcomeWatcher(pipeline.bootstrap, topics.results, topics.dlq)
    try:
        worker = pipeline.worker(*WORKER_ARGS, env=RETRY)
        assert wait_until(lambda: ready(worker), 60), "the worker did not become ready"
        published_ms = int(time.time() * 1000)
        deadlines = {request_id(i): published_ms + STEP_MS * (i + 1) for i in range(TOTAL)}
        produce(
            pipeline.bootstrap,
            topics.requests,
            (
                (request_id(i).encode(), request_value(i), [(HEADER, str(ms).encode())])
                for i, ms in enumerate(deadlines.values())
            ),
        )
        last_s = STEP_MS * TOTAL / 1000
        assert watcher.wait_distinct(TOTAL, last_s + 60), f"{watcher.distinct()} of {TOTAL}"
        assert_all_committed(pipeline, PARTITIONS)
        expired = worker.metric("evalstream_expired_total")
        calls = engine_calls(engine)
    finally:
        watcher.close()
    accounting = Accounting.of(watcher.outcomes(), TOTAL)
    assert accounting.dead_letters == {}, "retries ended by the cap, not by the deadline"
    assert accounting.duplicates == 0
    outcomes = accounting.outcomes
    assert {(o.status, o.reason) for o in outcomes} == {("error", "expired")}
    assert expired == TOTAL
    # Nothing expires early: the broker appended each result after the request's deadline
    # (one clock, whole milliseconds on both sides).
    early = [o.request_id for o in outcomes if o.created_s * 1000 < deadlines[o.request_id]]
    assert not early, f"expired before their deadline: {early}"
    # Every engine call is one of the attempts the results report: none was made after a
    # request expired, and none went unaccounted for.
    assert calls == sum(o.attempts for o in outcomes)
    # The retry path was taken: a request that reached the engine before its deadline failed,
    # was retried until the deadline passed, and then was not sent again.
    retried = [o for o in outcomes if o.attempts >= 2]
    attempts = {o.request_id: o.attempts for o in outcomes}
    assert retried, f"no request was retried before its deadline: {attempts}"
