"""RequestLedger: a request's transitions, room per lane, holds, committable offsets, the bound.

Every check is exact: the ledger's counts, never a timing.
"""

from __future__ import annotations

import random
import threading

import pytest

from consumer.admission import AdmissionWindow
from consumer.jobs import Job
from consumer.lanes import BULK, INTERACTIVE, Lane
from consumer.ledger import ReleaseAt, RequestLedger
from consumer.partitions import PartitionKey
from consumer.settings import LaneSettings

pytestmark = pytest.mark.timeout(30)

BULK_TOPIC, NOW_TOPIC = "requests", "now"
P0 = PartitionKey(BULK_TOPIC, 0, epoch=1)
P1 = PartitionKey(BULK_TOPIC, 1, epoch=2)
NOW = PartitionKey(NOW_TOPIC, 0, epoch=3)
WINDOW, BUFFER, INTERACTIVE_BUFFER = 4, 6, 5  # bulk bound 10, interactive bound 5
READS = 5000


class Clock:
    """A hand-moved monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(
    release_at: ReleaseAt = "acknowledged", clock: Clock | None = None, **lanes: object
) -> RequestLedger:
    window = AdmissionWindow(WINDOW, buffer=BUFFER)
    settings = LaneSettings(interactive_topic=NOW_TOPIC, buffer=INTERACTIVE_BUFFER, **lanes)
    ledger = RequestLedger(
        window,
        settings,
        {BULK_TOPIC: BULK, NOW_TOPIC: INTERACTIVE},
        release_at=release_at,
        clock=clock or Clock(),
    )
    ledger.assign([P0, P1, NOW])
    return ledger


def job(key: PartitionKey, offset: int) -> Job:
    lane: Lane = INTERACTIVE if key.topic == NOW_TOPIC else BULK
    return Job(key, offset, None, b"{}", [], 0.0, lane=lane)


def read(ledger: RequestLedger, key: PartitionKey, *offsets: int) -> list[Job]:
    """The consumer thread hands ``offsets`` over; the loop accepts and queues them."""
    assert ledger.hand_over([(key, o) for o in offsets]) == {}
    jobs = [job(key, o) for o in offsets]
    for j in jobs:
        assert ledger.accept(j)
        ledger.queued(j)
    return jobs


def test_a_request_passes_every_transition_and_its_offset_becomes_committable() -> None:
    ledger = make()
    (first, second) = read(ledger, P0, 10, 11)
    assert (ledger.held(), ledger.queued_of(BULK)) == (2, 2)
    assert ledger.committable([P0]) == {P0: 10}

    ledger.window.admit(2)
    ledger.admitted([first, second])
    assert (ledger.queued_of(BULK), ledger.in_flight_of(BULK)) == (0, 2)

    assert ledger.outcome(second)  # its slot is free, its result not yet acknowledged
    assert not ledger.outcome(second)  # a second outcome of the same job is ignored
    assert (ledger.in_flight_of(BULK), ledger.window.in_flight, ledger.held()) == (1, 1, 2)

    ledger.acknowledged(second)  # out of order: the offset below is still open
    assert ledger.held() == 1
    assert ledger.committable([P0]) == {P0: 10}
    assert ledger.outcome(first)
    ledger.acknowledged(first)
    assert ledger.held() == 0
    assert ledger.take_commits() == {P0: 12}
    assert ledger.take_commits() == {}  # only when it moved
    ledger.retry_commits([P0])  # the commit failed: offered again
    assert ledger.take_commits() == {P0: 12}


def test_the_bulk_room_counts_every_lane_and_the_interactive_room_only_its_own() -> None:
    ledger = make()
    read(ledger, P0, *range(WINDOW + BUFFER))
    assert ledger.room(BULK) == 0
    assert ledger.room(INTERACTIVE) == INTERACTIVE_BUFFER

    read(ledger, NOW, 0, 1)
    assert ledger.room(INTERACTIVE) == INTERACTIVE_BUFFER - 2
    assert ledger.room(BULK) == -2  # interactive requests held count against the bulk lane too
    assert ledger.resume_at(BULK) == BUFFER // 2
    assert ledger.resume_at(INTERACTIVE) == INTERACTIVE_BUFFER // 2


def test_hand_over_refuses_what_exceeds_the_bound_and_keeps_each_partition_in_order() -> None:
    ledger = make()
    read(ledger, P0, *range(8))  # 2 of the bulk bound's 10 left
    refused = ledger.hand_over([(P1, 0), (P0, 8), (P1, 1), (P0, 9), (NOW, 0)])

    # P1@0 and P0@8 take the last room; P1 and P0 are refused from their next offset on.
    assert refused == {P1: 1, P0: 9}
    assert ledger.held() == 11  # 10 bulk, and the interactive one within its own read-ahead
    assert ledger.held(BULK) == 10


def test_the_bound_holds_whatever_the_two_threads_interleave() -> None:
    """The consumer thread hands over as fast as it can; the loop releases; the count of held
    messages never passes the bound, at any moment either thread looks."""
    ledger = make()
    bound = WINDOW + BUFFER
    handed: list[int] = []
    seen_over: list[int] = []

    def consumer() -> None:
        offset = 0
        while offset < READS:
            wanted = max(1, ledger.room(BULK))
            batch = [(P0, offset + i) for i in range(wanted)]
            refused = ledger.hand_over(batch)
            taken = refused.get(P0, offset + wanted) - offset
            handed.extend(range(offset, offset + taken))
            offset += taken
            if (held := ledger.held()) > bound:
                seen_over.append(held)

    thread = threading.Thread(target=consumer)
    thread.start()
    rng = random.Random(7)
    released = 0
    while thread.is_alive():
        while released < len(handed) - rng.randrange(bound):
            ledger._release(P0, handed[released])  # the loop's side: a request left
            released += 1
        if (held := ledger.held()) > bound:
            seen_over.append(held)
    thread.join()
    assert seen_over == []
    assert len(handed) >= READS


def test_exactly_once_holds_last_until_the_transaction_commits() -> None:
    ledger = make("committed")
    jobs = read(ledger, P0, *range(WINDOW + BUFFER))
    ledger.window.admit(len(jobs))
    ledger.admitted(jobs)
    for j in jobs:
        ledger.outcome(j)
        ledger.acknowledged(j)  # held by the transactional committer
    assert ledger.committable([P0]) == {P0: WINDOW + BUFFER}
    # Transactions keep aborting: nothing is committed, so nothing more may be read.
    assert ledger.room(BULK) == 0
    assert ledger.hand_over([(P0, WINDOW + BUFFER)]) == {P0: WINDOW + BUFFER}

    ledger.committed({P0: 4})  # a transaction committed offsets 0-3
    assert ledger.held() == WINDOW + BUFFER - 4
    assert ledger.room(BULK) == 4


def test_a_redelivered_offset_is_not_processed_and_leaves_the_original_held() -> None:
    ledger = make()
    (original,) = read(ledger, P0, 5)
    assert ledger.hand_over([(P0, 5)]) == {}  # librdkafka rewound the partition
    assert ledger.held() == 2
    assert not ledger.accept(job(P0, 5))
    assert ledger.held() == 1  # the duplicate's hold ended, the original's did not
    ledger.window.admit(1)
    ledger.admitted([original])
    ledger.outcome(original)
    ledger.acknowledged(original)
    assert ledger.held() == 0


def test_a_revoked_partition_releases_its_holds_and_later_reports_change_nothing() -> None:
    ledger = make()
    queued = read(ledger, P0, 0, 1)
    (in_flight,) = read(ledger, P1, 0)
    ledger.window.admit(1)
    ledger.admitted([in_flight])
    ledger.dropped(queued[1:])  # the batcher dropped a queued one
    assert ledger.held() == 2

    ledger.release([P0, P1])
    assert ledger.held() == 0
    assert not ledger.owns(P1)
    assert ledger.outcome(in_flight)  # its evaluation ends later: the slot comes back
    assert ledger.window.in_flight == 0
    ledger.acknowledged(in_flight)  # never published, and nothing to release
    assert ledger.held() == 0
    assert ledger.committable() == {}


def test_a_message_of_a_partition_gone_before_the_loop_saw_it_is_released() -> None:
    ledger = make()
    assert ledger.hand_over([(P0, 0)]) == {}
    ledger.release([P0])
    assert not ledger.accept(job(P0, 0))
    assert ledger.held() == 0


def test_an_abandoned_evaluation_frees_its_slots_once() -> None:
    ledger = make()
    jobs = read(ledger, P0, 0, 1)
    ledger.window.admit(2)
    ledger.admitted(jobs)
    ledger.outcome(jobs[0])
    ledger.abandon(jobs)  # cancelled: only the job without an outcome had a slot left
    assert ledger.window.in_flight == 0
    assert ledger.in_flight_of(BULK) == 0


def test_draining_leaves_no_room_and_a_closed_window_neither() -> None:
    ledger = make()
    ledger.window.close()
    assert ledger.room(BULK) == 0
    ledger.window.open()
    ledger.drain_mode()
    assert (ledger.room(BULK), ledger.room(INTERACTIVE)) == (0, 0)


def test_the_bulk_limit_holds_while_the_interactive_lane_is_active() -> None:
    clock = Clock()
    ledger = make(clock=clock, bulk_limit=3, hold_s=30.0)
    assert ledger.bulk_room(10) == 10  # no interactive request seen yet

    (urgent,) = read(ledger, NOW, 0)
    bulk = read(ledger, P0, 0, 1)
    ledger.window.admit(3)
    ledger.admitted([urgent, *bulk])
    assert ledger.bulk_room(10) == 1
    ledger.outcome(urgent)
    clock.now += 29.0
    assert ledger.bulk_room(10) == 1
    clock.now += 2.0  # the hold has passed and nothing interactive is in the worker
    assert ledger.bulk_room(10) == 10


def test_without_a_bulk_limit_bulk_takes_every_free_slot() -> None:
    ledger = make()
    read(ledger, NOW, 0)
    assert ledger.bulk_room(7) == 7
