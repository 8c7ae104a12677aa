"""The worker's Kafka stages on their own, against the real broker.

`ResultSink` publishes outcomes (and turns an oversized result into a dead letter);
`RequestSource` reads and reports its assignment; each committer makes offsets durable:
`OffsetCommitter` through the consumer, `TransactionalCommitter` with its outcomes.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable

import pytest
from confluent_kafka import Message

from consumer.committer import OffsetCommitter
from consumer.errors import SourceError
from consumer.jobs import Job
from consumer.lanes import BULK, INTERACTIVE, Lane
from consumer.partitions import PartitionKey, PartitionRegistry
from consumer.records import Outcome
from consumer.request_source import RequestSource
from consumer.result_sink import ResultSink
from consumer.transactions import TransactionalCommitter
from tests.integration.pipeline import (
    committed,
    end_offsets,
    produce,
    read_topic,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

COUNT = 5


class Listener:
    """The worker's side of `RequestSource`, recording what the source thread reports."""

    def __init__(self, demands: dict[Lane, int] | None = None) -> None:
        self.demands = demands or {BULK: 100, INTERACTIVE: 100}
        self.messages: list[tuple[Message, PartitionKey]] = []
        self.assigned: list[PartitionKey] = []
        self.fatal: list[SourceError] = []
        self._lock = threading.Lock()

    def demand(self, lane: Lane) -> int:
        return self.demands[lane]

    def resume_at(self, lane: Lane) -> int:
        return 1

    def on_messages(self, messages: list[Message], keys: list[PartitionKey]) -> None:
        with self._lock:
            self.messages.extend(zip(messages, keys, strict=True))

    def on_assigned(self, partitions: list[PartitionKey]) -> None:
        self.assigned.extend(partitions)

    def on_revoked(self, partitions: list[PartitionKey], *, lost: bool) -> dict[PartitionKey, int]:
        return {}

    def on_commit_failed(self, partitions: list[PartitionKey]) -> None:
        """Not expected here."""

    def on_fatal(self, error: SourceError) -> None:
        self.fatal.append(error)

    def count(self, topic: str | None = None) -> int:
        with self._lock:
            return sum(1 for m, _k in self.messages if topic is None or m.topic() == topic)


def outcome_of(message: Message, key: PartitionKey) -> Outcome:
    job = Job(key, message.offset() or 0, message.key(), message.value(), [], time.time())
    return Outcome(job, "result", b"result of " + (message.value() or b""), None, "ok")


@pytest.fixture
async def stages(
    kafka_bootstrap: str, topic_factory: Callable[..., str], group_factory: Callable[..., str]
) -> AsyncIterator[tuple[RequestSource, Listener, ResultSink, dict[str, str]]]:
    """A started source with ``COUNT`` requests read, a sink, and their names."""
    names = {
        "requests": topic_factory(1, prefix="requests"),
        "results": topic_factory(1, prefix="results"),
        "dlq": topic_factory(1, prefix="dlq"),
        "group": group_factory(),
    }
    produce(kafka_bootstrap, names["requests"], ((b"k", b"r%d" % i, None) for i in range(COUNT)))
    config = {"bootstrap.servers": kafka_bootstrap}
    source = RequestSource({**config, "group.id": names["group"]}, {names["requests"]: BULK})
    sink = ResultSink(
        {**config, "message.max.bytes": 1000},
        asyncio.get_running_loop(),
        results_topic=names["results"],
        dlq_topic=names["dlq"],
    )
    listener = Listener()
    source.start(listener)
    try:
        read = await asyncio.to_thread(wait_until, lambda: listener.count() >= COUNT, 60)
        assert read, f"{listener.count()} of {COUNT} requests read"
        yield source, listener, sink, names
    finally:
        await asyncio.to_thread(source.stop, dict)
        sink.close()
    assert listener.fatal == []


async def test_offset_committer_sends_outcomes_and_commits_through_the_consumer(
    kafka_bootstrap: str, stages: tuple[RequestSource, Listener, ResultSink, dict[str, str]]
) -> None:
    source, listener, sink, names = stages
    partitions = PartitionRegistry()
    partitions.assign(listener.assigned)
    committer = OffsetCommitter(source, sink)
    for message, key in listener.messages:
        partitions.get(key).offsets.track(message.offset() or 0)  # type: ignore[union-attr]
        await committer.deliver(outcome_of(message, key))
        partitions.complete(key, message.offset() or 0)
    await committer.tick(partitions)

    def all_committed() -> bool:
        return committed(kafka_bootstrap, names["group"], names["requests"], 1) == {0: COUNT}

    assert await asyncio.to_thread(wait_until, all_committed, 30)
    results = read_topic(kafka_bootstrap, names["results"], lambda m: len(m) >= COUNT, 30)
    assert [value for _k, value, _h in results] == [b"result of r%d" % i for i in range(COUNT)]
    assert await committer.revoke(partitions, listener.assigned, lost=True) == {}
    assert await committer.final(partitions) == {listener.assigned[0]: COUNT}


async def test_result_sink_sends_an_oversized_result_as_a_dead_letter(
    kafka_bootstrap: str, stages: tuple[RequestSource, Listener, ResultSink, dict[str, str]]
) -> None:
    _source, listener, sink, names = stages
    key = listener.messages[0][1]
    job = Job(key, 0, b"k", b"r0", [], time.time())

    sent = await sink.publish(Outcome(job, "result", b"x" * 5000, None, "ok"))

    assert sent.destination == "dead_letter"
    dead = read_topic(kafka_bootstrap, names["dlq"], lambda m: len(m) >= 1, 30)
    assert [(k, v) for k, v, _h in dead] == [(b"k", b"r0")]  # the original, byte for byte
    assert ("evalstream.error.reason", b"message_too_large") in dead[0][2]


async def test_transactional_committer_commits_outcomes_with_their_offsets(
    kafka_bootstrap: str, stages: tuple[RequestSource, Listener, ResultSink, dict[str, str]]
) -> None:
    source, listener, sink, names = stages
    partitions = PartitionRegistry()
    partitions.assign(listener.assigned)
    committer = await asyncio.to_thread(
        TransactionalCommitter,
        {"bootstrap.servers": kafka_bootstrap},
        f"{names['group']}-test",
        source.group_metadata,
        sink.topic_of,
    )
    try:
        for message, key in listener.messages:
            partitions.get(key).offsets.track(message.offset() or 0)  # type: ignore[union-attr]
            await committer.deliver(outcome_of(message, key))
            partitions.complete(key, message.offset() or 0)
        assert end_offsets(kafka_bootstrap, names["results"], 1) == {0: 0}  # held, not sent

        await committer.tick(partitions)

        results = read_topic(kafka_bootstrap, names["results"], lambda m: len(m) >= COUNT, 30)
        assert len(results) == COUNT
        assert committed(kafka_bootstrap, names["group"], names["requests"], 1) == {0: COUNT}
        assert await committer.final(partitions) == {}  # nothing left for the consumer
    finally:
        committer.close()


async def test_a_paused_bulk_lane_never_pauses_the_interactive_topic(
    kafka_bootstrap: str, topic_factory: Callable[..., str], group_factory: Callable[..., str]
) -> None:
    bulk, interactive = topic_factory(2, prefix="bulk"), topic_factory(1, prefix="interactive")
    produce(kafka_bootstrap, bulk, ((b"b", b"bulk %d" % i, None) for i in range(50)))
    listener = Listener({BULK: 0, INTERACTIVE: 100})  # the bulk backlog fills the worker
    source = RequestSource(
        {"bootstrap.servers": kafka_bootstrap, "group.id": group_factory()},
        {bulk: BULK, interactive: INTERACTIVE},
    )
    source.start(listener)
    try:
        assert await asyncio.to_thread(wait_until, lambda: len(listener.assigned) == 3, 60)
        assert await asyncio.to_thread(wait_until, lambda: source.paused(BULK), 30)
        produce(kafka_bootstrap, interactive, ((b"i", b"urgent %d" % i, None) for i in range(3)))

        assert await asyncio.to_thread(wait_until, lambda: listener.count(interactive) == 3, 30)
        assert not source.paused(INTERACTIVE)
        assert source.paused_count() == 2  # the bulk topic's partitions only
        # A paused partition delivers nothing new: at most one fetch arrived before it.
        bulk_read = listener.count(bulk)
        listener.demands[BULK] = 100
        assert await asyncio.to_thread(wait_until, lambda: listener.count(bulk) == 50, 30)
        assert bulk_read < 50
        assert not source.paused(BULK)
    finally:
        await asyncio.to_thread(source.stop, dict)
    assert listener.fatal == []
