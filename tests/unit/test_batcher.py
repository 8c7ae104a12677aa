"""MicroBatcher: admission into the window, linger, no waiting for the slowest."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from consumer.admission import AdmissionWindow
from consumer.batcher import MicroBatcher
from consumer.jobs import Job
from consumer.partitions import PartitionKey

pytestmark = pytest.mark.timeout(10)


def job(offset: int, partition: int = 0) -> Job:
    return Job(PartitionKey("t", partition, 1), offset, None, b"{}", [], 0.0)


class Dispatched:
    """The dispatch callback: records batches and wakes whoever waits for one."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self._changed = asyncio.Event()

    def __call__(self, batch: list[Job]) -> None:
        self.batches.append([j.offset for j in batch])
        self._changed.set()

    async def until(self, condition: Callable[[list[list[int]]], bool]) -> None:
        """Waits (on the callback, not on a clock) until ``condition`` holds."""
        async with asyncio.timeout(5):
            while not condition(self.batches):
                self._changed.clear()
                await self._changed.wait()


async def yield_to_others(turns: int = 5) -> None:
    """Lets every ready task run a few steps: no time passes, nothing is waited for."""
    for _ in range(turns):
        await asyncio.sleep(0)


async def test_fills_the_window_and_refills_each_freed_slot() -> None:
    window = AdmissionWindow(4)
    dispatched = Dispatched()
    batcher = MicroBatcher(window, dispatched, 0.0, 64)
    for i in range(10):
        batcher.add(job(i))
    task = asyncio.create_task(batcher.run())
    await dispatched.until(lambda b: len(b) >= 1)
    assert dispatched.batches == [[0, 1, 2, 3]]
    assert window.in_flight == 4
    window.release(1)  # one request finished: exactly one more goes out, at once
    await dispatched.until(lambda b: len(b) >= 2)
    assert dispatched.batches[-1] == [4]
    assert window.in_flight == 4
    task.cancel()


async def test_linger_gathers_jobs_admitted_together() -> None:
    window = AdmissionWindow(32)
    dispatched = Dispatched()
    # A linger far longer than the gap between the two groups below, however loaded the machine.
    batcher = MicroBatcher(window, dispatched, 0.5, 8)
    task = asyncio.create_task(batcher.run())
    for i in range(3):
        batcher.add(job(i))
    await yield_to_others()  # the first group is seen and the linger starts
    for i in range(3, 12):
        batcher.add(job(i))
    await dispatched.until(lambda b: sum(map(len, b)) >= 12)
    assert len(dispatched.batches[0]) == 8  # lingered, then capped at max_batch
    assert sum(map(len, dispatched.batches)) == 12
    task.cancel()


async def test_closed_window_admits_nothing_until_opened() -> None:
    window = AdmissionWindow(4, closed=True)
    dispatched = Dispatched()
    batcher = MicroBatcher(window, dispatched, 0.0, 64)
    batcher.add(job(0))
    task = asyncio.create_task(batcher.run())
    await yield_to_others()  # a batcher that ignored the closed window would dispatch now
    assert dispatched.batches == []
    window.open()
    await dispatched.until(lambda b: len(b) >= 1)
    assert dispatched.batches == [[0]]
    task.cancel()


def test_drop_removes_only_revoked_partitions() -> None:
    batcher = MicroBatcher(AdmissionWindow(1), lambda b: None, 0.0, 1)
    for i in range(4):
        batcher.add(job(i, partition=i % 2))
    dropped = batcher.drop([PartitionKey("t", 1, 1)])
    assert [j.offset for j in dropped] == [1, 3]
    assert len(batcher) == 2


def interactive(offset: int) -> Job:
    urgent = Job(PartitionKey("now", 0, 1), offset, None, b"{}", [], 0.0)
    urgent.lane = "interactive"
    return urgent


async def test_interactive_jobs_go_first_and_hold_back_bulk_jobs() -> None:
    window = AdmissionWindow(2)
    dispatched = Dispatched()
    batcher = MicroBatcher(window, dispatched, 0.0, 64)
    for i in range(4):
        batcher.add(job(i))
    task = asyncio.create_task(batcher.run())
    await dispatched.until(lambda b: len(b) >= 1)  # the bulk jobs fill the window
    for i in (100, 101, 102):
        batcher.add(interactive(i))

    window.release(2)  # two slots: both to interactive jobs, none to the waiting bulk jobs
    await dispatched.until(lambda b: len(b) >= 2)
    window.release(2)
    await dispatched.until(lambda b: sum(map(len, b)) >= 5)

    assert dispatched.batches[:2] == [[0, 1], [100, 101]]
    assert dispatched.batches[2][0] == 102  # the last interactive job before any bulk one
    assert batcher.queued("interactive") == 0
    task.cancel()


async def test_the_reserve_admits_interactive_jobs_into_a_full_window() -> None:
    window = AdmissionWindow(2)
    dispatched = Dispatched()
    batcher = MicroBatcher(window, dispatched, 0.0, 64, reserve=1)
    for i in range(4):
        batcher.add(job(i))
    task = asyncio.create_task(batcher.run())
    await dispatched.until(lambda b: len(b) >= 1)

    batcher.add(interactive(100))  # no slot frees: the reserve takes it at once
    await dispatched.until(lambda b: len(b) >= 2)
    batcher.add(interactive(101))  # the reserve is used up: it waits for a slot
    await yield_to_others()

    assert dispatched.batches == [[0, 1], [100]]
    assert window.in_flight == 3
    window.release(1)
    await dispatched.until(lambda b: len(b) >= 3)
    assert dispatched.batches[-1] == [101]
    task.cancel()


async def test_bulk_room_limits_the_bulk_jobs_admitted() -> None:
    window = AdmissionWindow(8)
    dispatched = Dispatched()
    # At most 4 bulk jobs in flight (the interactive one is not counted).
    batcher = MicroBatcher(
        window, dispatched, 0.0, 64, bulk_room=lambda free: min(free, 4 - window.in_flight)
    )
    for i in range(6):
        batcher.add(job(i))
    batcher.add(interactive(100))
    task = asyncio.create_task(batcher.run())
    await dispatched.until(lambda b: len(b) >= 1)
    await yield_to_others()

    assert dispatched.batches == [[100, 0, 1, 2, 3]]
    task.cancel()
