"""MicroBatcher: admission into the window, linger, no waiting for the slowest."""

from __future__ import annotations

import asyncio

import pytest

from consumer.admission import AdmissionWindow
from consumer.batcher import MicroBatcher
from consumer.jobs import Job
from consumer.partitions import PartitionKey

pytestmark = pytest.mark.timeout(10)


def job(offset: int, partition: int = 0) -> Job:
    return Job(PartitionKey("t", partition, 1), offset, None, b"{}", [], 0.0)


async def test_fills_the_window_and_refills_each_freed_slot() -> None:
    window = AdmissionWindow(4)
    batches: list[list[int]] = []
    batcher = MicroBatcher(window, lambda b: batches.append([j.offset for j in b]), 0.0, 64)
    for i in range(10):
        batcher.add(job(i))
    task = asyncio.create_task(batcher.run())
    await asyncio.sleep(0)  # let it dispatch
    assert batches == [[0, 1, 2, 3]]
    assert window.in_flight == 4
    window.release(1)  # one request finished: exactly one more goes out, at once
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert batches[-1] == [4]
    assert window.in_flight == 4
    task.cancel()


async def test_linger_gathers_jobs_admitted_together() -> None:
    window = AdmissionWindow(32)
    batches: list[int] = []
    batcher = MicroBatcher(window, lambda b: batches.append(len(b)), 0.05, 8)
    task = asyncio.create_task(batcher.run())
    for i in range(3):
        batcher.add(job(i))
    await asyncio.sleep(0.01)
    for i in range(3, 12):
        batcher.add(job(i))
    while sum(batches) < 12:  # noqa: ASYNC110  # polls a plain list the batcher appends to
        await asyncio.sleep(0.01)
    assert batches[0] == 8  # lingered, then capped at max_batch
    assert sum(batches) == 12
    task.cancel()


async def test_closed_window_admits_nothing_until_opened() -> None:
    window = AdmissionWindow(4, closed=True)
    batches: list[int] = []
    batcher = MicroBatcher(window, lambda b: batches.append(len(b)), 0.0, 64)
    batcher.add(job(0))
    task = asyncio.create_task(batcher.run())
    await asyncio.sleep(0.01)
    assert batches == []
    window.open()
    await asyncio.sleep(0.01)
    assert batches == [1]
    task.cancel()


def test_drop_removes_only_revoked_partitions() -> None:
    batcher = MicroBatcher(AdmissionWindow(1), lambda b: None, 0.0, 1)
    for i in range(4):
        batcher.add(job(i, partition=i % 2))
    dropped = batcher.drop([PartitionKey("t", 1, 1)])
    assert [j.offset for j in dropped] == [1, 3]
    assert len(batcher) == 2
