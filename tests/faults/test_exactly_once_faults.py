"""Exactly-once under faults: poison and oversized results, and transactions that keep aborting.

An oversized result must become a dead letter, not fence the transactional producer (a fenced
worker exits, restarts, meets the same result and exits again); poison input is dead-lettered
as in at-least-once mode; and while every transaction aborts, the results it would have
carried stay held in the worker, counted against the read-ahead, so the worker stops reading.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

# Documented in confluent_kafka.admin, which imports them without re-exporting them.
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from consumer.settings import WindowSettings
from tests.faults.outcomes import WINDOW, WORKER_ARGS, request_id, request_value
from tests.integration.pipeline import (
    Pipeline,
    TopicWatcher,
    committed,
    end_offsets,
    produce,
    read_topic,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults]

PARTITIONS = 2
EXACTLY_ONCE = ("--processing-guarantee", "exactly_once")
# The results topic takes less than the worker's producer: a result between the two is refused
# by the broker, a larger one by the producer itself. An ordinary result is ~1 KB; the producer's
# batches stay below the topic's limit (batch.size), as they must for any topic.
RESULTS_LIMIT = 200_000
PRODUCER = {"message.max.bytes": "400000", "batch.size": "100000"}


def set_topic_config(admin: AdminClient, topic: str, config: dict[str, str]) -> None:
    """Sets ``config`` on ``topic`` (incrementally)."""
    entries = [
        ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
        for name, value in config.items()
    ]
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=entries)
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)


def with_metadata(i: int, size: int) -> bytes:
    """A valid request whose metadata (echoed in its result) is ``size`` characters long."""
    data = json.loads(request_value(i))
    data["metadata"] = {"padding": "x" * size}
    return json.dumps(data).encode()


def all_committed(pipeline: Pipeline) -> bool:
    topics = pipeline.topics
    ends = end_offsets(pipeline.bootstrap, topics.requests, PARTITIONS)
    return committed(pipeline.bootstrap, topics.group, topics.requests, PARTITIONS) == ends


@pytest.mark.timeout(300)
def test_exactly_once_dead_letters_poison_and_oversized_results_and_keeps_running(
    engine_factory: Callable[..., str],
    pipeline_factory: Callable[..., Pipeline],
    kafka_admin: AdminClient,
) -> None:
    pipeline = pipeline_factory(engine_factory("vllm", "--time-scale", "20"), PARTITIONS)
    topics = pipeline.topics
    set_topic_config(kafka_admin, topics.results, {"max.message.bytes": str(RESULTS_LIMIT)})
    # Every tenth request is bad: poison (not JSON), a result the broker refuses for the
    # topic's limit, or one the worker's producer refuses before sending it.
    kinds = {i: ("poison", "broker", "producer")[(i // 10) % 3] for i in range(0, 150, 10)}
    values: dict[str, Callable[[int], bytes]] = {
        "poison": lambda i: b"{not json",
        "broker": lambda i: with_metadata(i, 250_000),
        "producer": lambda i: with_metadata(i, 500_000),
    }
    produce(
        pipeline.bootstrap,
        topics.requests,
        (
            (request_id(i).encode(), values[kinds[i]](i) if i in kinds else request_value(i), None)
            for i in range(150)
        ),
    )
    client = json.dumps(PRODUCER)
    watcher = TopicWatcher(pipeline.bootstrap, topics.results)
    try:
        worker = pipeline.worker(*EXACTLY_ONCE, env={"EVALSTREAM_KAFKA__CLIENT": client})
        good = 150 - len(kinds)
        assert watcher.wait_distinct(good, 120), f"{watcher.distinct()} of {good} results"
        assert wait_until(lambda: all_committed(pipeline), 60), "the offsets did not reach the end"
        dead = read_topic(pipeline.bootstrap, topics.dlq, lambda m: len(m) >= len(kinds), 60)
        assert worker.alive(), "a poison or oversized result stopped the worker"
        assert worker.stop() == 0
    finally:
        watcher.close()
    assert sorted(watcher.ids()) == sorted(request_id(i) for i in range(150) if i not in kinds)
    reasons = {(k or b"").decode(): dict(h)["evalstream.error.reason"] for k, _v, h in dead}
    assert len(dead) == len(kinds)  # each exactly once
    expected = {"poison": b"invalid_json", "broker": b"message_too_large"}
    expected["producer"] = b"message_too_large"
    assert reasons == {request_id(i): expected[kind] for i, kind in kinds.items()}
    assert worker.log_path is not None
    assert "transactional commit failed" not in worker.log_path.read_text()


UNAVAILABLE_S = 20.0
TOTAL = 3000


@pytest.fixture
def late_results_topic(kafka_admin: AdminClient) -> Iterator[str]:
    """A results topic name that does not exist yet (auto-creation is off); deleted after."""
    name = f"results-late-{uuid.uuid4().hex[:12]}"
    yield name
    kafka_admin.delete_topics([name])


@pytest.mark.timeout(400)
def test_exactly_once_memory_stays_bounded_while_every_transaction_aborts(
    engine_factory: Callable[..., str],
    pipeline_factory: Callable[..., Pipeline],
    kafka_admin: AdminClient,
    late_results_topic: str,
) -> None:
    """No transaction can commit while its results topic is missing: each one aborts and its
    results stay held in the worker. They count against the read-ahead, so the worker never
    holds more than the window plus the read-ahead, however long the outage; then everything
    commits, each result once."""
    pipeline = pipeline_factory(engine_factory("vllm", "--time-scale", "20"), 4)
    topics = pipeline.topics
    produce(
        pipeline.bootstrap,
        topics.requests,
        ((request_id(i).encode(), request_value(i), None) for i in range(TOTAL)),
    )
    # Produce requests to the missing topic fail after 2 s instead of 30: each transaction aborts.
    client = json.dumps({"topic.metadata.propagation.max.ms": "2000"})
    worker = pipeline.worker(
        *EXACTLY_ONCE, *WORKER_ARGS, "--results-topic", late_results_topic,
        env={"EVALSTREAM_KAFKA__CLIENT": client},
    )  # fmt: skip
    bound = WINDOW + WindowSettings().buffer
    # Nothing leaves the worker: it reads up to its bound, and then no further.
    assert wait_until(lambda: worker.metric("evalstream_consumed_total") >= bound, 120)
    deadline = time.monotonic() + UNAVAILABLE_S
    while time.monotonic() < deadline:  # the outage itself, watched once a second
        held = worker.metric("evalstream_consumed_total")
        assert held <= bound, f"{held:.0f} messages held while transactions abort, bound {bound}"
        positions = committed(pipeline.bootstrap, topics.group, topics.requests, 4)
        assert max(positions.values()) <= 0, positions
        time.sleep(1.0)
    assert worker.alive()
    topic = NewTopic(late_results_topic, 4, replication_factor=1)
    kafka_admin.create_topics([topic])[late_results_topic].result(timeout=30)
    watcher = TopicWatcher(pipeline.bootstrap, late_results_topic)
    try:
        assert watcher.wait_distinct(TOTAL, 300), f"{watcher.distinct()} of {TOTAL} results"
        ends = end_offsets(pipeline.bootstrap, topics.requests, 4)
        assert wait_until(
            lambda: committed(pipeline.bootstrap, topics.group, topics.requests, 4) == ends, 60
        )
        assert worker.stop() == 0
    finally:
        watcher.close()
    assert sorted(watcher.ids()) == [request_id(i) for i in range(TOTAL)]  # each exactly once
