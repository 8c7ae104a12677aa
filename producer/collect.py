"""Reading the results topic: `ResultReader` de-duplicates, `ResultCollector` stores and counts.

Delivery is at-least-once, so one request can have several results; the first result read for a
request id is kept and later ones are counted as duplicates. The collector's steps per poll:
hand new results to the sink, flush the sink, and only then commit offsets (with an explicit
group), so a crash never commits a result that was not stored.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol

from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
)
from pydantic import ValidationError

from consumer.schemas import AnyResult, parse_result, result_key
from producer.progress import ProgressDisplay
from producer.result_view import ResultView
from producer.sinks import ResultStore
from producer.summary import ResultStats

# Called with (partition, offset, reason) for a message that is not a result.
InvalidCallback = Callable[[int, int, str], None]
# Sink flush and offset commit cadence while results keep arriving.
FLUSH_INTERVAL_S = 1.0
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


class ResultReader:
    """Iterates the distinct results of a results topic.

    Without ``group_id`` a fresh random group reads the topic from the beginning and commits
    nothing; with one, offsets are committed by `commit` and the group resumes where it stopped
    (``from_beginning`` then only applies while the group has no committed offsets).

    Args:
        bootstrap_servers: Kafka bootstrap servers.
        topic: The results topic.
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
        group_id: str | None = None,
        from_beginning: bool = True,
        on_invalid: InvalidCallback | None = None,
        **kafka_config: Any,
    ) -> None:
        self.topic = topic
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
        self._consumer.subscribe([topic], on_assign=self._assigned)

    def _assigned(self, consumer: Consumer, partitions: list[Any]) -> None:
        """Counts assignments (the collector's idle clock restarts at each)."""
        self.assignments += 1

    @property
    def distinct(self) -> int:
        """Distinct request ids read so far."""
        return len(self._seen)

    def poll(self, timeout: float = 1.0) -> list[ReceivedResult]:
        """Reads what is available within ``timeout`` seconds and returns the new results."""
        fresh = []
        for message in self._consumer.consume(_POLL_BATCH, timeout):
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise KafkaException(error)
                continue
            self.received += 1
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

    def __iter__(self) -> Iterator[ReceivedResult]:
        """Yields distinct results as they arrive, forever (break out to stop)."""
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


@dataclass(frozen=True, slots=True)
class CollectReport:
    """The outcome of one collect run."""

    stats: ResultStats
    output: str
    elapsed_s: float
    expected: int | None
    stopped_by: str

    @property
    def complete(self) -> bool:
        """Whether the expected number of results arrived (True when none was expected)."""
        return self.expected is None or self.stats.distinct >= self.expected

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values (``--json-summary``)."""
        return {
            **self.stats.to_dict(),
            "expected": self.expected,
            "complete": self.complete,
            "stopped_by": self.stopped_by,
            "elapsed_s": round(self.elapsed_s, 3),
            "output": self.output,
        }

    def render(self) -> str:
        """The report as text for a terminal."""
        expected = f" of {self.expected:,} expected" if self.expected is not None else ""
        return "\n".join(
            (
                self.stats.render(),
                f"stopped      {self.stopped_by}{expected} · {self.elapsed_s:,.1f} s",
                f"written to   {self.output}",
            )
        )


class ResultSource(Protocol):
    """What `ResultCollector` needs from a reader (a `ResultReader`, or a fake in tests)."""

    received: int
    duplicates: int
    invalid: int
    assignments: int

    def poll(self, timeout: float = ...) -> list[ReceivedResult]:
        """Returns the new distinct results read within ``timeout`` seconds."""
        ...

    def commit(self) -> None:
        """Commits what was returned so far, if the reader commits at all."""
        ...


class ResultCollector:
    """Stores distinct results in a sink until enough arrived or the topic went quiet.

    Args:
        reader: The de-duplicating reader.
        sink: Where results go.
        expect: Stop after this many distinct results.
        until_idle: Stop after this many seconds without any message.
        clock: Monotonic clock (tests inject one).
    """

    def __init__(
        self,
        reader: ResultSource,
        sink: ResultStore,
        *,
        expect: int | None = None,
        until_idle: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reader = reader
        self.sink = sink
        self.expect = expect
        self.until_idle = until_idle
        self.stats = ResultStats()
        self._clock = clock

    def run(self, progress: ProgressDisplay) -> CollectReport:
        """Collects until a stop condition holds or Ctrl-C, then flushes and commits."""
        started = self._clock()
        try:
            stopped_by = self._loop(progress)
        except KeyboardInterrupt:
            stopped_by = "interrupted"
        self.sink.flush()
        self.reader.commit()
        stats = self.stats
        stats.duplicates, stats.invalid = self.reader.duplicates, self.reader.invalid
        return CollectReport(
            stats, self.sink.description, self._clock() - started, self.expect, stopped_by
        )

    def _loop(self, progress: ProgressDisplay) -> str:
        """Polls and stores; returns why it stopped."""
        last_activity = last_flush = self._clock()
        seen = (self.reader.received, self.reader.assignments)
        while True:
            for received in self.reader.poll(timeout=self._poll_timeout(last_activity)):
                self._store(received)
                progress.advance()
            now = self._clock()
            if (self.reader.received, self.reader.assignments) != seen:
                seen = (self.reader.received, self.reader.assignments)
                last_activity = now
                progress.describe(f"collecting ({self.reader.duplicates:,} dup)")
            if now - last_flush >= FLUSH_INTERVAL_S:
                self.sink.flush()
                self.reader.commit()
                last_flush = now
            if self.expect is not None and self.stats.distinct >= self.expect:
                return f"after {self.stats.distinct:,} results"
            if self.until_idle is not None and now - last_activity >= self.until_idle:
                return f"idle for {self.until_idle:g} s"

    def _poll_timeout(self, last_activity: float) -> float:
        """Waits at most until the idle deadline, and never longer than a second."""
        if self.until_idle is None:
            return 1.0
        left = self.until_idle - (self._clock() - last_activity)
        return max(0.01, min(1.0, left))

    def _store(self, received: ReceivedResult) -> None:
        """Counts one distinct result and writes it if the sink takes its shape."""
        view = ResultView.of(received.result, received.timestamp)
        self.stats.add(view)
        if self.sink.accepts(received.result):
            self.sink.write(received.result, received.value, view)
        else:
            self.stats.skipped += 1
