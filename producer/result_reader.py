"""`ResultReader`: the distinct outcomes of a results topic, and of its dead-letter topic.

Delivery is at-least-once, so one request can have several results; the first outcome read for a
request id is kept and later ones are counted as duplicates. With a dead-letter topic, a dead
letter is an outcome too (`producer.dead_letters`), de-duplicated with the results by request id.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
)
from pydantic import ValidationError

from consumer.schemas import AnyResult, parse_result, result_key
from producer.dead_letters import DeadLetter

# Called with (partition, offset, reason) for a message that is not a result.
InvalidCallback = Callable[[int, int, str], None]
_POLL_BATCH = 500


@dataclass(frozen=True, slots=True)
class ReceivedResult:
    """A result seen for the first time, with where it came from."""

    request_id: str
    result: AnyResult
    value: bytes
    partition: int
    offset: int
    timestamp: datetime | None


# What `ResultReader.poll` returns: a request's first outcome.
Outcome = ReceivedResult | DeadLetter


class ResultReader:
    """Iterates the distinct outcomes of a results topic (and of a dead-letter topic).

    Without ``group_id`` a fresh random group reads the topic from the beginning and commits
    nothing; with one, offsets are committed by `commit` and the group resumes where it stopped
    (``from_beginning`` then only applies while the group has no committed offsets).

    Args:
        bootstrap_servers: Kafka bootstrap servers.
        topic: The results topic.
        dlq_topic: The dead-letter topic read beside it, or None for results only.
        group_id: Consumer group, or None for a throwaway one.
        from_beginning: Start at the earliest offset when there is no committed one.
        on_invalid: Told about each message that is not a result of either shape.
        **kafka_config: librdkafka consumer options.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        *,
        dlq_topic: str | None = None,
        group_id: str | None = None,
        from_beginning: bool = True,
        on_invalid: InvalidCallback | None = None,
        **kafka_config: Any,
    ) -> None:
        self.topic = topic
        self.dlq_topic = dlq_topic
        self.group_id = group_id or f"evalstream-collect-{uuid.uuid4().hex[:12]}"
        self.commits = group_id is not None
        self.received = 0
        self.duplicates = 0
        self.invalid = 0
        self.assignments = 0
        self._seen: set[str] = set()
        self._on_invalid = on_invalid
        config = {
            "bootstrap.servers": bootstrap_servers,
            "group.id": self.group_id,
            "auto.offset.reset": "earliest" if from_beginning or group_id is None else "latest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            **kafka_config,
        }
        self._consumer = Consumer(config)
        topics = [topic] if dlq_topic is None else [topic, dlq_topic]
        self._consumer.subscribe(topics, on_assign=self._assigned)

    def _assigned(self, consumer: Consumer, partitions: list[Any]) -> None:
        """Counts assignments (the collector's idle clock restarts at each)."""
        self.assignments += 1

    @property
    def distinct(self) -> int:
        """Distinct request ids with an outcome (a result or a dead letter) so far."""
        return len(self._seen)

    def poll(self, timeout: float = 1.0) -> list[Outcome]:
        """Reads what is available within ``timeout`` seconds; returns the new outcomes."""
        fresh: list[Outcome] = []
        for message in self._consumer.consume(_POLL_BATCH, timeout):
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise KafkaException(error)
                continue
            self.received += 1
            received: Outcome | None
            if self.dlq_topic is not None and message.topic() == self.dlq_topic:
                received = DeadLetter.of(message, *_coordinates(message))
            else:
                received = self._decode(message)
            if received is None:
                continue
            if received.request_id in self._seen:
                self.duplicates += 1
                continue
            self._seen.add(received.request_id)
            fresh.append(received)
        return fresh

    def _decode(self, message: Message) -> ReceivedResult | None:
        """Parses one message, reporting it as invalid if it is not a result."""
        value: bytes = message.value() or b""
        try:
            result = parse_result(value)
        except (ValidationError, ValueError, TypeError) as exc:
            self.invalid += 1
            if self._on_invalid is not None:
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                self._on_invalid(*_coordinates(message), reason)
            return None
        kind, millis = message.timestamp()
        stamp = None
        if kind != TIMESTAMP_NOT_AVAILABLE:
            stamp = datetime.fromtimestamp(millis / 1000, UTC)
        partition, offset = _coordinates(message)
        return ReceivedResult(result_key(result), result, value, partition, offset, stamp)

    def commit(self) -> None:
        """Commits the offsets of everything returned so far (explicit groups only)."""
        if self.commits and self.received:
            try:
                self._consumer.commit(asynchronous=False)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError._NO_OFFSET:  # nothing new since last commit
                    raise

    def __iter__(self) -> Iterator[Outcome]:
        """Yields distinct outcomes as they arrive, forever (break out to stop)."""
        while True:
            yield from self.poll()

    def close(self) -> None:
        """Commits (explicit groups) and leaves the group."""
        self.commit()
        self._consumer.close()

    def __enter__(self) -> ResultReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _coordinates(message: Message) -> tuple[int, int]:
    """Partition and offset of a consumed message (-1 where librdkafka has none)."""
    partition, offset = message.partition(), message.offset()
    return (-1 if partition is None else partition, -1 if offset is None else offset)
