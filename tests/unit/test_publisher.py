"""OutcomePublisher: outcomes go through the committer, then the ledger hears they were taken."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import CollectorRegistry

from consumer.admission import AdmissionWindow
from consumer.jobs import Job
from consumer.ledger import RequestLedger
from consumer.metrics import Metrics
from consumer.partitions import PartitionKey
from consumer.publisher import OutcomePublisher
from consumer.records import Outcome
from consumer.settings import LaneSettings

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


def outcome(source: PartitionKey, offset: int) -> Outcome:
    job = Job(source, offset, b"k", b"{}", [], time.time())
    return Outcome(job, "dead_letter", b"{}", [], "invalid_request")


def ledger() -> RequestLedger:
    return RequestLedger(AdmissionWindow(4, buffer=4), LaneSettings(), {"requests": "bulk"})


async def test_an_outcome_completes_its_offset_only_once_the_committer_took_it() -> None:
    book = ledger()
    book.assign([OWNED])
    assert book.hand_over([(OWNED, 7)]) == {}
    sent = outcome(OWNED, 7)
    assert book.accept(sent.job)
    committer = HoldingCommitter()
    metrics = Metrics(CollectorRegistry(), "w", "")
    publisher = OutcomePublisher(book, committer, metrics)

    publisher.emit(sent)
    assert book.held() == 1
    assert book.committable() == {OWNED: 7}

    committer.gate.set()
    assert await book.drain([OWNED], time.monotonic() + 5) == 0  # the delivery ended
    assert book.held() == 0  # at-least-once: the hold ends with the acknowledgement
    assert [o.job.offset for o in committer.taken] == [7]
    assert book.committable() == {OWNED: 8}
    counted = metrics.dead_lettered.labels(**metrics.ids, reason="invalid_request")
    assert counted._value.get() == 1


async def test_the_outcome_of_a_revoked_partition_is_never_published() -> None:
    committer = HoldingCommitter()
    committer.gate.set()
    publisher = OutcomePublisher(ledger(), committer, Metrics(CollectorRegistry(), "w", ""))

    publisher.emit(outcome(REVOKED, 3))

    assert asyncio.all_tasks() == {asyncio.current_task()}  # no delivery started
    assert committer.taken == []
