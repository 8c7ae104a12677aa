"""LaneDemand: each lane's backpressure on its own, and the bulk limit while the lane is active."""

from __future__ import annotations

import time

import pytest
from prometheus_client import CollectorRegistry

from consumer.admission import AdmissionWindow
from consumer.batcher import MicroBatcher
from consumer.demand import LaneDemand
from consumer.jobs import Job
from consumer.lanes import BULK, INTERACTIVE, Lane
from consumer.metrics import Metrics
from consumer.partitions import PartitionKey, PartitionRegistry
from consumer.publisher import OutcomePublisher
from consumer.settings import LaneSettings

pytestmark = pytest.mark.timeout(10)


def job(offset: int, lane: Lane = BULK) -> Job:
    new = Job(PartitionKey(lane, 0, 1), offset, None, b"{}", [], 0.0)
    new.lane = lane
    return new


def parts(**lanes: object) -> tuple[LaneDemand, MicroBatcher, AdmissionWindow]:
    window = AdmissionWindow(4, buffer=4)
    batcher = MicroBatcher(window, lambda jobs: None, 0.0, 64)
    publisher = OutcomePublisher(PartitionRegistry(), None, Metrics(CollectorRegistry(), "w"))  # type: ignore[arg-type]
    settings = LaneSettings(interactive_topic="now", buffer=5, **lanes)
    return LaneDemand(window, batcher, publisher, settings), batcher, window


async def test_a_full_bulk_lane_leaves_the_interactive_demand_whole() -> None:
    demand, batcher, window = parts()
    for i in range(window.high_water):
        batcher.add(job(i))

    assert demand.of(BULK) == 0
    assert demand.of(INTERACTIVE) == 5

    demand.handed_over(INTERACTIVE, 2)  # in transit to the loop: counted at once
    assert demand.of(INTERACTIVE) == 3
    demand.accepted(INTERACTIVE, 2)
    batcher.add(job(100, INTERACTIVE))
    batcher.add(job(101, INTERACTIVE))
    assert demand.of(INTERACTIVE) == 3
    assert demand.of(BULK) < 0  # interactive requests held count against the bulk lane too


def test_the_bulk_limit_holds_while_the_lane_is_active(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    demand, _batcher, _window = parts(bulk_limit=3, hold_s=30.0)
    assert demand.bulk_room(10) == 10  # no interactive request seen yet

    demand.accepted(INTERACTIVE, 1)
    demand.admitted([job(1), job(2)])
    assert demand.bulk_room(10) == 1

    now[0] += 29.0
    assert demand.bulk_room(10) == 1
    now[0] += 2.0  # the hold has passed and nothing interactive is in the worker
    assert demand.bulk_room(10) == 10


def test_without_a_bulk_limit_bulk_takes_every_free_slot() -> None:
    demand, _batcher, _window = parts()
    demand.accepted(INTERACTIVE, 1)
    assert demand.bulk_room(7) == 7
