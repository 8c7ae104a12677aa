"""Micro-batching: admit jobs into the window and dispatch them in small groups.

Jobs admitted within a short linger go out together (one HTTP call where the API
takes a list). There is no static batch: the batcher refills the window the moment
any slot frees, so the engine never waits for the slowest member of a batch.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable

from consumer.admission import AdmissionWindow
from consumer.jobs import Job
from consumer.partitions import PartitionKey

Dispatch = Callable[[list[Job]], None]


class MicroBatcher:
    """Holds decoded jobs until the window has room, then dispatches them.

    Args:
        window: the in-flight window; each dispatched job takes one slot.
        dispatch: receives each batch (it must not block).
        linger_s: how long a batch that is not full waits for more jobs.
        max_batch: the most jobs in one batch.
    """

    def __init__(
        self, window: AdmissionWindow, dispatch: Dispatch, linger_s: float, max_batch: int
    ) -> None:
        self._window = window
        self._dispatch = dispatch
        self._linger_s = linger_s
        self._max_batch = max_batch
        self._pending: deque[Job] = deque()
        self._arrived = asyncio.Event()

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, job: Job) -> None:
        """Queues a decoded, routed job."""
        self._pending.append(job)
        self._arrived.set()

    def drop(self, partitions: Iterable[PartitionKey]) -> list[Job]:
        """Removes and returns queued jobs of revoked partitions (never admitted)."""
        gone = set(partitions)
        dropped = [job for job in self._pending if job.source in gone]
        if dropped:
            self._pending = deque(job for job in self._pending if job.source not in gone)
        return dropped

    def clear(self) -> list[Job]:
        """Removes every queued job (shutdown: they stay uncommitted and are redelivered)."""
        dropped = list(self._pending)
        self._pending.clear()
        return dropped

    async def run(self) -> None:
        """Dispatches forever; cancel the task to stop."""
        while True:
            await self._ready()
            if self._linger_s > 0 and len(self._pending) < min(
                self._max_batch, self._window.free()
            ):
                await asyncio.sleep(self._linger_s)
            count = min(len(self._pending), self._window.free(), self._max_batch)
            if count == 0:
                continue  # the window closed during the linger
            batch = [self._pending.popleft() for _ in range(count)]
            self._window.admit(count)
            self._dispatch(batch)

    async def _ready(self) -> None:
        """Waits until there is a job and a free slot."""
        while not self._pending or self._window.free() == 0:
            if not self._pending:
                self._arrived.clear()
                await self._arrived.wait()
            else:
                await self._window.wait_change()
