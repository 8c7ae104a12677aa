"""OutcomePublisher: outcomes go through the committer, then their offsets complete."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import CollectorRegistry

from consumer.jobs import Job
from consumer.metrics import Metrics
from consumer.partitions import PartitionKey, PartitionRegistry
from consumer.publisher import OutcomePublisher
from consumer.records import Outcome

pytestmark = pytest.mark.timeout(10)

OWNED = PartitionKey("requests", 0, epoch=1)
REVOKED = PartitionKey("requests", 1, epoch=2)


class HoldingCommitter:
    """Takes outcomes like the exactly-once committer does: each one once, held in order."""

    def __init__(self) -> None:
        self.taken: list[Outcome] = []
        self.gate = asyncio.Event()

    async def deliver(self, outcome: Outcome) -> Outcome:
        await self.gate.wait()
        self.taken.append(outcome)
        return outcome

    async def tick(self, partitions: PartitionRegistry) -> None:
        """Unused here."""

    async def revoke(
        self, partitions: PartitionRegistry, keys: list[PartitionKey], *, lost: bool
    ) -> dict[PartitionKey, int]:
        return {}

    async def final(self, partitions: PartitionRegistry) -> dict[PartitionKey, int]:
        return {}

    def close(self) -> None:
        """Nothing to release."""


def outcome(source: PartitionKey, offset: int) -> Outcome:
    job = Job(source, offset, b"k", b"{}", [], time.time())
    return Outcome(job, "dead_letter", b"{}", [], "invalid_request")


async def test_an_outcome_completes_its_offset_only_once_the_committer_took_it() -> None:
    partitions = PartitionRegistry()
    partitions.assign([OWNED])
    partitions.get(OWNED).offsets.track(7)  # type: ignore[union-attr]
    committer = HoldingCommitter()
    metrics = Metrics(CollectorRegistry(), "w", "")
    publisher = OutcomePublisher(partitions, committer, metrics)

    publisher.emit(outcome(OWNED, 7))
    assert publisher.pending == 1
    assert partitions.committable() == {OWNED: 7}

    committer.gate.set()
    assert await partitions.drain([OWNED], time.monotonic() + 5) == 0  # the delivery ended
    assert publisher.pending == 0
    assert [o.job.offset for o in committer.taken] == [7]
    assert partitions.committable() == {OWNED: 8}
    counted = metrics.dead_lettered.labels(**metrics.ids, reason="invalid_request")
    assert counted._value.get() == 1


async def test_the_outcome_of_a_revoked_partition_is_never_published() -> None:
    partitions = PartitionRegistry()
    committer = HoldingCommitter()
    committer.gate.set()
    publisher = OutcomePublisher(partitions, committer, Metrics(CollectorRegistry(), "w", ""))

    publisher.emit(outcome(REVOKED, 3))

    assert publisher.pending == 0
    assert committer.taken == []
