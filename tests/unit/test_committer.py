"""Committer: its steps over the ledger and a commit path, and one deadline per revoke."""

from __future__ import annotations

import asyncio

import pytest

from consumer.admission import AdmissionWindow
from consumer.committer import Committer
from consumer.deadline import Deadline
from consumer.jobs import Job
from consumer.ledger import ReleaseAt, RequestLedger
from consumer.partitions import PartitionKey
from consumer.records import Outcome
from consumer.settings import LaneSettings

pytestmark = pytest.mark.timeout(10)

P0 = PartitionKey("requests", 0, epoch=1)
P1 = PartitionKey("requests", 1, epoch=2)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class RecordingPath:
    """A commit path that records what it was asked to make durable."""

    def __init__(self) -> None:
        self.writes: list[tuple[dict[PartitionKey, int], bool]] = []
        self.durable = True
        self.forgotten: set[PartitionKey] = set()

    async def deliver(self, outcome: Outcome) -> Outcome:
        return outcome

    async def write(
        self, offsets: dict[PartitionKey, int], deadline: Deadline, *, in_rebalance: bool
    ) -> bool:
        self.writes.append((dict(offsets), in_rebalance))
        return self.durable

    def forget(self, keys: set[PartitionKey]) -> None:
        self.forgotten |= keys

    def close(self, deadline: Deadline) -> None:
        """Nothing to close."""


def ledger_with(done: dict[PartitionKey, list[int]], release_at: ReleaseAt) -> RequestLedger:
    """A ledger where every listed offset was read and acknowledged."""
    ledger = RequestLedger(
        AdmissionWindow(10, buffer=10), LaneSettings(), {"requests": "bulk"}, release_at=release_at
    )
    ledger.assign(done)
    for key, offsets in done.items():
        assert ledger.hand_over([(key, o) for o in offsets]) == {}
        for offset in offsets:
            job = Job(key, offset, None, b"{}", [], 0.0)
            assert ledger.accept(job)
            ledger.acknowledged(job)
    return ledger


async def test_a_commit_takes_what_moved_and_offers_it_again_when_not_durable() -> None:
    ledger = ledger_with({P0: [0, 1], P1: [5]}, "acknowledged")
    path = RecordingPath()
    committer = Committer(ledger, path, 1.0)

    path.durable = False
    await committer.commit(Deadline.after(30))
    path.durable = True
    await committer.commit(Deadline.after(30))  # offered again: the first write failed
    await committer.commit(Deadline.after(30))  # nothing moved: no write

    assert path.writes == [({P0: 2, P1: 6}, False), ({P0: 2, P1: 6}, False)]


async def test_a_refresh_writes_every_position_again_though_nothing_moved() -> None:
    # A durable-looking commit the broker lost (a restart, a coordinator failover) is made good.
    ledger = ledger_with({P0: [0, 1], P1: [5]}, "acknowledged")
    path = RecordingPath()
    committer = Committer(ledger, path, 1.0)

    await committer.commit(Deadline.after(30))
    await committer.commit(Deadline.after(30))  # nothing moved: no write
    await committer.commit(Deadline.after(30), refresh=True)

    assert path.writes == [({P0: 2, P1: 6}, False), ({P0: 2, P1: 6}, False)]


async def test_exactly_once_holds_end_only_when_the_write_was_durable() -> None:
    ledger = ledger_with({P0: [0, 1, 2]}, "committed")
    path = RecordingPath()
    committer = Committer(ledger, path, 1.0)

    path.durable = False  # the transaction aborted
    await committer.commit(Deadline.after(30))
    assert ledger.held() == 3
    path.durable = True
    await committer.commit(Deadline.after(30))
    assert ledger.held() == 0


async def test_a_revoke_drains_within_its_deadline_commits_its_own_and_forgets_them() -> None:
    ledger = ledger_with({P0: [0], P1: [0]}, "acknowledged")
    path = RecordingPath()
    committer = Committer(ledger, path, 1.0)
    clock = Clock()
    stuck = asyncio.create_task(asyncio.Event().wait())
    ledger.attach([P0], stuck)  # type: ignore[arg-type]  # an evaluation that never ends

    # The deadline has passed (minus the commit's reserve): the drain cancels at once.
    await committer.revoke([P0], lost=False, deadline=Deadline(0.0, clock))

    assert stuck.cancelled()
    assert path.writes == [({P0: 1}, True)]  # only the revoked partition, in the rebalance
    assert path.forgotten == {P0}


async def test_a_lost_partition_commits_nothing() -> None:
    ledger = ledger_with({P0: [0]}, "acknowledged")
    path = RecordingPath()
    await Committer(ledger, path, 1.0).revoke([P0], lost=True, deadline=Deadline.after(10))
    assert path.writes == []
    assert path.forgotten == {P0}
