"""The worker's Kafka stages on their own, against the real broker.

`ResultSink` publishes outcomes (and turns an oversized result into a dead letter);
`RequestSource` reads and reports its assignment, within the room its credits give; each
commit path makes offsets durable under the `Committer`: `OffsetPath` through the consumer's
thread, `TransactionalPath` with its outcomes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import threading
import time
from collections.abc import AsyncIterator, Callable

import pytest
from confluent_kafka import Message

from consumer.admission import AdmissionWindow
from consumer.committer import Committer, OffsetPath
from consumer.deadline import Deadline
from consumer.errors import SourceError
from consumer.jobs import Job
from consumer.lanes import BULK, INTERACTIVE, Lane
from consumer.ledger import RequestLedger
from consumer.partitions import PartitionKey
from consumer.records import Outcome
from consumer.request_source import RequestSource
from consumer.result_sink import ResultSink
from consumer.settings import LaneSettings
from consumer.transactions import TransactionalPath
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
    """The worker's side of `RequestSource`, recording what the source thread reports; it
    grants every lane a fixed room (no holds are kept)."""

    def __init__(self, rooms: dict[Lane, int] | None = None) -> None:
        self.rooms = rooms or {BULK: 100, INTERACTIVE: 100}
        self.messages: list[tuple[Message, PartitionKey]] = []
        self.assigned: list[PartitionKey] = []
        self.fatal: list[SourceError] = []
        self._lock = threading.Lock()

    def room(self, lane: Lane) -> int:
        return self.rooms[lane]

    def resume_at(self, lane: Lane) -> int:
        return 1

    def hand_over(self, refs: list[tuple[PartitionKey, int]]) -> dict[PartitionKey, int]:
        return {}

    def force(self, refs: list[tuple[PartitionKey, int]]) -> None:
        """Never called: nothing is refused."""

    def on_messages(self, messages: list[Message], keys: list[PartitionKey]) -> None:
        with self._lock:
            self.messages.extend(zip(messages, keys, strict=True))

    def on_assigned(self, partitions: list[PartitionKey]) -> None:
        self.assigned.extend(partitions)

    def on_revoked(
        self, partitions: list[PartitionKey], *, lost: bool
    ) -> concurrent.futures.Future[None]:
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        done.set_result(None)
        return done

    def on_commit_failed(self, partitions: list[PartitionKey]) -> None:
        """Not expected here."""

    def on_fatal(self, error: SourceError) -> None:
        self.fatal.append(error)

    def count(self, topic: str | None = None) -> int:
        with self._lock:
            return sum(1 for m, _k in self.messages if topic is None or m.topic() == topic)


def ledger_of(listener: Listener, topic: str, release_at: str = "acknowledged") -> RequestLedger:
    """A ledger that owns the listener's partitions and holds every message it read."""
    ledger = RequestLedger(
        AdmissionWindow(100, buffer=100),
        LaneSettings(),
        {topic: BULK},
        release_at="committed" if release_at == "committed" else "acknowledged",
    )
    ledger.assign(listener.assigned)
    refs = [(key, message.offset() or 0) for message, key in listener.messages]
    assert ledger.hand_over(refs) == {}
    for message, key in listener.messages:
        assert ledger.accept(Job(key, message.offset() or 0, None, None, [], 0.0))
    return ledger


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
    source.start(listener, listener)
    try:
        read = await asyncio.to_thread(wait_until, lambda: listener.count() >= COUNT, 60)
        assert read, f"{listener.count()} of {COUNT} requests read"
        yield source, listener, sink, names
    finally:
        await asyncio.to_thread(source.stop)
        sink.close()
    assert listener.fatal == []


async def test_the_committer_sends_outcomes_and_commits_through_the_consumers_thread(
    kafka_bootstrap: str, stages: tuple[RequestSource, Listener, ResultSink, dict[str, str]]
) -> None:
    source, listener, sink, names = stages
    ledger = ledger_of(listener, names["requests"])
    committer = Committer(ledger, OffsetPath(source, sink), 1.0)
    for message, key in listener.messages:
        job = Job(key, message.offset() or 0, b"k", message.value(), [], time.time())
        await committer.deliver(outcome_of(message, key))
        ledger.acknowledged(job)
    assert ledger.held() == 0  # at-least-once: acknowledged is released
    await committer.commit(Deadline.after(30))

    def all_committed() -> bool:
        return committed(kafka_bootstrap, names["group"], names["requests"], 1) == {0: COUNT}

    assert await asyncio.to_thread(wait_until, all_committed, 30)
    results = read_topic(kafka_bootstrap, names["results"], lambda m: len(m) >= COUNT, 30)
    assert [value for _k, value, _h in results] == [b"result of r%d" % i for i in range(COUNT)]
    assert ledger.take_commits() == {}  # committed once, not again until it moves


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


async def test_the_transactional_path_commits_outcomes_with_their_offsets(
    kafka_bootstrap: str, stages: tuple[RequestSource, Listener, ResultSink, dict[str, str]]
) -> None:
    source, listener, sink, names = stages
    ledger = ledger_of(listener, names["requests"], "committed")
    path = await asyncio.to_thread(
        TransactionalPath,
        {"bootstrap.servers": kafka_bootstrap},
        f"{names['group']}-test",
        source.group_metadata,
        sink.topic_of,
    )
    committer = Committer(ledger, path, 1.0)
    try:
        for message, key in listener.messages:
            await committer.deliver(outcome_of(message, key))
            ledger.acknowledged(Job(key, message.offset() or 0, None, None, [], 0.0))
        assert end_offsets(kafka_bootstrap, names["results"], 1) == {0: 0}  # held, not sent
        assert ledger.held() == COUNT  # exactly-once: held until the transaction commits

        await committer.commit(Deadline.after(30))

        results = read_topic(kafka_bootstrap, names["results"], lambda m: len(m) >= COUNT, 30)
        assert len(results) == COUNT
        assert committed(kafka_bootstrap, names["group"], names["requests"], 1) == {0: COUNT}
        assert ledger.held() == 0
    finally:
        path.close(Deadline.after(10))


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
    source.start(listener, listener)
    try:
        assert await asyncio.to_thread(wait_until, lambda: len(listener.assigned) == 3, 60)
        assert await asyncio.to_thread(wait_until, lambda: source.paused(BULK), 30)
        produce(kafka_bootstrap, interactive, ((b"i", b"urgent %d" % i, None) for i in range(3)))

        assert await asyncio.to_thread(wait_until, lambda: listener.count(interactive) == 3, 30)
        assert not source.paused(INTERACTIVE)
        assert source.paused_count() == 2  # the bulk topic's partitions only
        # A paused partition delivers nothing new: at most one fetch arrived before it.
        bulk_read = listener.count(bulk)
        listener.rooms[BULK] = 100
        assert await asyncio.to_thread(wait_until, lambda: listener.count(bulk) == 50, 30)
        assert bulk_read < 50
        assert not source.paused(BULK)
    finally:
        await asyncio.to_thread(source.stop)
    assert listener.fatal == []


class GreedyCredits:
    """A real ledger's holds behind a room that always says 50: every poll asks for more than
    the ledger takes, so the source must rewind what the ledger refuses."""

    def __init__(self, ledger: RequestLedger) -> None:
        self.ledger = ledger

    def room(self, lane: Lane) -> int:
        return 50

    def resume_at(self, lane: Lane) -> int:
        return 1

    def hand_over(self, refs: list[tuple[PartitionKey, int]]) -> dict[PartitionKey, int]:
        return self.ledger.hand_over(refs)

    def force(self, refs: list[tuple[PartitionKey, int]]) -> None:
        self.ledger.force(refs)


async def test_a_message_past_the_bound_is_rewound_and_read_again_in_order(
    kafka_bootstrap: str, topic_factory: Callable[..., str], group_factory: Callable[..., str]
) -> None:
    topic = topic_factory(1, prefix="requests")
    produce(kafka_bootstrap, topic, ((b"k", b"r%d" % i, None) for i in range(50)))
    ledger = RequestLedger(AdmissionWindow(4, buffer=6), LaneSettings(), {topic: BULK})
    listener = Listener()
    source = RequestSource(
        {"bootstrap.servers": kafka_bootstrap, "group.id": group_factory()}, {topic: BULK}
    )
    source.start(listener, GreedyCredits(ledger))
    try:
        for released in range(0, 50, 10):
            read = released + 10  # the bound is 10: the ledger holds exactly that many
            arrived = functools.partial(lambda n: listener.count() >= n, read)
            assert await asyncio.to_thread(wait_until, arrived, 30)
            assert ledger.held() == 10
            offsets = [m.offset() for m, _k in listener.messages]
            assert offsets == list(range(read))  # in order, no gap, nothing twice
            for message, key in listener.messages[released:read]:
                ledger._release(key, message.offset() or 0)  # those requests are done
    finally:
        await asyncio.to_thread(source.stop)
    assert listener.fatal == []
