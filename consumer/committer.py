"""When an outcome and its source offset become durable: the one home of the commit.

The worker calls a `Committer` at four points and never asks which guarantee it runs:

1. ``deliver``: a job's outcome is final; returns once its offset may complete.
2. ``tick``: every ``kafka.commit_interval_s``, commit what completed.
3. ``revoke``: partitions leave this worker (drained or lost); commit what is theirs.
4. ``final``: shutdown (drained); the last commit before leaving the group.

Two implementations, chosen once at start-up (`open_committer`):

- `OffsetCommitter`, **at-least-once** (the default): an outcome is sent at once and
  completes when the broker acknowledged it; the consumer commits, per partition, the
  lowest incomplete offset, and only when it moved. A crash re-delivers at most the
  uncommitted window.
- `TransactionalCommitter` (`consumer.transactions`), **exactly-once**: an outcome is
  held, and each tick produces the held outcomes and their offsets in one transaction.
"""

from __future__ import annotations

from typing import Protocol

from consumer.partitions import PartitionKey, PartitionRegistry
from consumer.records import Outcome
from consumer.request_source import RequestSource
from consumer.result_sink import ResultSink
from consumer.settings import Settings
from consumer.transactions import TransactionalCommitter


class Committer(Protocol):
    """Commits outcomes and offsets; every method runs on the event loop.

    A method that raises `consumer.errors.CommitError` means this process may not commit
    again (fenced); the worker stops, and later calls commit nothing.
    """

    async def deliver(self, outcome: Outcome) -> Outcome:
        """Takes a final outcome; returns (the outcome as sent) once its offset may complete."""

    async def tick(self, partitions: PartitionRegistry) -> None:
        """Commits the offsets that completed since the last tick."""

    async def revoke(
        self, partitions: PartitionRegistry, keys: list[PartitionKey], *, lost: bool
    ) -> dict[PartitionKey, int]:
        """Partitions leave; returns offsets the consumer must commit in its revoke callback."""

    async def final(self, partitions: PartitionRegistry) -> dict[PartitionKey, int]:
        """Shutdown; returns offsets the consumer must commit before it leaves the group."""

    def close(self) -> None:
        """Releases what the committer owns (after the consumer left the group)."""


class OffsetCommitter:
    """At-least-once: outcomes sent as they come, offsets committed by the consumer.

    Args:
        source: the consumer, which commits (asynchronously; synchronously on revoke).
        sink: the results and dead-letter topics.
    """

    def __init__(self, source: RequestSource, sink: ResultSink) -> None:
        self._source = source
        self._sink = sink

    async def deliver(self, outcome: Outcome) -> Outcome:
        """Sends the outcome and waits for the broker's acknowledgement (``acks=all``)."""
        return await self._sink.publish(outcome)

    async def tick(self, partitions: PartitionRegistry) -> None:
        """Commits each partition's lowest incomplete offset, where it moved."""
        self._source.commit(partitions.take_commits())

    async def revoke(
        self, partitions: PartitionRegistry, keys: list[PartitionKey], *, lost: bool
    ) -> dict[PartitionKey, int]:
        """A lost partition commits nothing (another member owns it already)."""
        return {} if lost else partitions.committable(keys)

    async def final(self, partitions: PartitionRegistry) -> dict[PartitionKey, int]:
        """Everything acknowledged, committed by the consumer as it leaves."""
        return partitions.committable()

    def close(self) -> None:
        """Nothing of its own: the consumer and the sink are closed by the worker."""


def open_committer(settings: Settings, source: RequestSource, sink: ResultSink) -> Committer:
    """The committer of ``kafka.processing_guarantee``."""
    kafka = settings.kafka
    if kafka.processing_guarantee == "exactly_once":
        return TransactionalCommitter(
            kafka.client_config(),
            # Stable per worker, so a restarted worker fences its previous incarnation.
            f"{kafka.group_id}-{settings.worker_id}",
            source.group_metadata,
            sink.topic_of,
        )
    return OffsetCommitter(source, sink)
