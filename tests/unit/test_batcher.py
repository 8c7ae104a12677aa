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
