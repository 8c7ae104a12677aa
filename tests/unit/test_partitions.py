"""PartitionRegistry: owned partitions, their commits, and the drain of a revoke."""

from __future__ import annotations

import asyncio
import time

import pytest

from consumer.partitions import PartitionKey, PartitionRegistry

pytestmark = pytest.mark.timeout(10)

A = PartitionKey("requests", 0, epoch=1)
B = PartitionKey("requests", 1, epoch=2)


async def forever() -> None:
    await asyncio.Event().wait()


def registry_with(*keys: PartitionKey) -> PartitionRegistry:
    registry = PartitionRegistry()
    registry.assign(keys)
    return registry


def test_commits_move_with_completions_and_are_taken_once() -> None:
    registry = registry_with(A, B)
    for offset in (5, 6, 7):
        registry.get(A).offsets.track(offset)  # type: ignore[union-attr]
    registry.complete(A, 6)
    assert registry.take_commits() == {A: 5}  # 5 is still incomplete: it is read again
    assert registry.incomplete() == 2
    registry.complete(A, 5)
    assert registry.take_commits() == {A: 7}
    assert registry.take_commits() == {}
    registry.retry_commits([A])  # the commit failed: offered again
    assert registry.take_commits() == {A: 7}
    assert registry.committable() == {A: 7}
    assert registry.committable([B]) == {}


def test_a_released_partition_forgets_its_completions() -> None:
    registry = registry_with(A)
    registry.get(A).offsets.track(3)  # type: ignore[union-attr]
    registry.release([A])
    registry.complete(A, 3)  # a late outcome of a revoked epoch
    assert A not in registry
    assert registry.get(A) is None
    assert registry.committable() == {}
    registry.assign([PartitionKey("requests", 0, epoch=3)])
    assert len(registry) == 1


async def test_drain_waits_for_tasks_then_cancels_those_of_revoked_partitions_only() -> None:
    registry = registry_with(A, B)
    finishing = asyncio.create_task(asyncio.sleep(0))
    stuck_a = asyncio.create_task(forever())
    shared = asyncio.create_task(forever())  # serves A and B: B stays ours
    registry.attach([A], finishing)
    registry.attach([A], stuck_a)
    registry.attach([A, B], shared)

    cancelled = await registry.drain([A], time.monotonic() + 0.2)

    assert cancelled == 1
    assert finishing.done()
    assert not finishing.cancelled()
    assert stuck_a.cancelled()
    assert not shared.done()
    shared.cancel()
    assert await registry.drain(None, time.monotonic() + 1) == 0
