"""Broker faults: kill -9 and restart, a stall longer than the session, a results topic gone."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

import pytest

# NewTopic's documented home; the package imports it from cimpl without re-exporting it.
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from consumer.settings import WindowSettings
from evalstream_local.broker.kafka import LocalKafka
from tests.faults.outcomes import (
    APPEND_TIME,
    PARTITIONS,
    TIME_SCALE,
    WINDOW,
    WORKER_ARGS,
    Accounting,
    OutcomeWatcher,
    assert_all_committed,
    publish,
    report,
)
from tests.integration.pipeline import Pipeline, committed, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.slow]

TOTAL = 3000
BROKER_DOWN_S = 5.0
STALL_S = 10.0
# The stall outlasts the worker's session: the group drops it, and it has to rejoin.
SHORT_SESSION = {
    "EVALSTREAM_KAFKA__CLIENT": json.dumps(
        {"session.timeout.ms": "6000", "heartbeat.interval.ms": "1000"}
    )
}


@pytest.fixture
def own_broker(local_kafka: LocalKafka, kafka_bootstrap: str) -> LocalKafka:
    """The session's broker, which these tests kill, pause and restart under the pipeline."""
    if local_kafka.bootstrap != kafka_bootstrap:
        pytest.skip("the session's broker is not one this test may kill (KAFKA_BOOTSTRAP/Docker)")
    return local_kafka


def finish(watcher: OutcomeWatcher, pipeline: Pipeline, timeout: float) -> Accounting:
    """Waits for every request's outcome and the commits, then checks the invariant."""
    try:
        assert watcher.wait_distinct(TOTAL, timeout), f"{watcher.distinct()} of {TOTAL} finished"
        assert_all_committed(pipeline, PARTITIONS)
    finally:
        watcher.close()
    return Accounting.of(watcher.outcomes(), TOTAL)


@pytest.mark.timeout(500)
def test_broker_kill_9_and_restart_on_its_data_loses_nothing(
    own_broker: LocalKafka,
    engine_factory: Callable[..., str],
    fault_pipeline: Callable[..., Pipeline],
) -> None:
    pipeline = fault_pipeline(engine_factory("vllm", "--time-scale", TIME_SCALE), PARTITIONS)
    publish(pipeline, TOTAL)
    watcher = OutcomeWatcher(pipeline.bootstrap, pipeline.topics.results, pipeline.topics.dlq)
    worker = pipeline.worker(*WORKER_ARGS)
    assert watcher.wait_distinct(1000, 120)
    own_broker.kill()  # SIGKILL: no controlled shutdown, nothing flushed by the broker
    killed = time.time()
    time.sleep(BROKER_DOWN_S)  # the outage itself
    own_broker.start()  # same data directory and ports
    back = time.time()
    accounting = finish(watcher, pipeline, 300)
    assert worker.alive(), "the worker must ride out a broker restart"
    assert accounting.dead_letters == {}
    report(
        "broker_kill_9_restart",
        TOTAL,
        accounting.duplicates,
        accounting.recovery_s(back),
        broker_down_s=round(back - killed, 2),
    )


@pytest.mark.timeout(500)
def test_broker_stall_longer_than_the_session_loses_nothing(
    own_broker: LocalKafka,
    engine_factory: Callable[..., str],
    fault_pipeline: Callable[..., Pipeline],
) -> None:
    pipeline = fault_pipeline(engine_factory("vllm", "--time-scale", TIME_SCALE), PARTITIONS)
    publish(pipeline, TOTAL)
    watcher = OutcomeWatcher(pipeline.bootstrap, pipeline.topics.results, pipeline.topics.dlq)
    worker = pipeline.worker(*WORKER_ARGS, env=SHORT_SESSION)
    assert watcher.wait_distinct(1000, 120)
    own_broker.pause()  # SIGSTOP: connections stay open, nothing answers
    try:
        time.sleep(STALL_S)  # the stall itself, longer than the 6 s session timeout
    finally:
        own_broker.resume()
    resumed = time.time()
    accounting = finish(watcher, pipeline, 300)
    assert worker.alive()
    assert worker.metric("evalstream_rebalances_total", kind="lost") >= 1, "the session held"
    assert accounting.dead_letters == {}
    report(
        "broker_stall_10s",
        TOTAL,
        accounting.duplicates,
        accounting.recovery_s(resumed),
        stall_s=STALL_S,
        session_timeout_ms=6000,
    )


UNAVAILABLE_S = 20.0


@pytest.mark.timeout(500)
def test_results_topic_unavailable_commits_nothing_until_it_exists(
    own_broker: LocalKafka,
    kafka_admin: AdminClient,
    engine_factory: Callable[..., str],
    fault_pipeline: Callable[..., Pipeline],
) -> None:
    """The results topic does not exist (auto-creation is off): no result can be delivered.

    `ResultSink.send` retries a failed delivery for as long as the worker owns the request,
    and a source offset is committed only after its result is acknowledged, so not a single
    offset may be committed until the topic exists; then everything completes.
    """
    pipeline = fault_pipeline(engine_factory("vllm", "--time-scale", TIME_SCALE), PARTITIONS)
    topics = pipeline.topics
    publish(pipeline, TOTAL)
    results = f"results-late-{uuid.uuid4().hex[:12]}"
    worker = pipeline.worker(*WORKER_ARGS, "--results-topic", results)
    assert wait_until(lambda: worker.metric("evalstream_consumed_total") > 0, 60)
    deadline = time.monotonic() + UNAVAILABLE_S
    # Memory stays bounded whatever the outage: nothing is acknowledged, so the worker holds
    # every message it consumed, and it reads no further than the window plus the read-ahead.
    bound = WINDOW + WindowSettings().buffer
    while time.monotonic() < deadline:  # the outage itself, watched once a second
        # None (-1001) or 0, the first offset: a commit that marks no request as done.
        positions = committed(pipeline.bootstrap, topics.group, topics.requests, PARTITIONS)
        assert max(positions.values()) <= 0, positions
        held = worker.metric("evalstream_consumed_total")
        assert held <= bound, f"{held:.0f} messages held during the outage, bound {bound}"
        time.sleep(1.0)
    consumed = worker.metric("evalstream_consumed_total")
    assert consumed <= bound
    print(f"\nconsumed while the results topic was missing: {consumed:.0f} of {TOTAL}")
    assert worker.metric("evalstream_completed_total") == 0
    assert worker.metric("evalstream_dead_lettered_total") == 0
    topic = NewTopic(results, PARTITIONS, replication_factor=1, config=APPEND_TIME)
    kafka_admin.create_topics([topic])[results].result(timeout=30)
    created = time.time()
    try:
        watcher = OutcomeWatcher(pipeline.bootstrap, results, topics.dlq)
        accounting = finish(watcher, pipeline, 300)
    finally:
        kafka_admin.delete_topics([results])
    assert accounting.dead_letters == {}
    report(
        "results_topic_unavailable_20s",
        TOTAL,
        accounting.duplicates,
        accounting.recovery_s(created),
        unavailable_s=UNAVAILABLE_S,
        consumed_while_unavailable=int(consumed),
    )
