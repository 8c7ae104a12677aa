"""Micro-batching: admit jobs into the window and dispatch them in small groups.

Jobs admitted within a short linger go out together (one HTTP call where the API
takes a list). There is no static batch: the batcher refills the window the moment
any slot frees, so the engine never waits for the slowest member of a batch.

Interactive jobs (`consumer.lanes`) go first: no bulk job is admitted while one waits,
they skip the linger, and they may use ``reserve`` slots beyond the window's limit.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable

from consumer.admission import AdmissionWindow
from consumer.jobs import Job
from consumer.lanes import BULK, INTERACTIVE, LANES, Lane
from consumer.partitions import PartitionKey
from consumer.settings import LaneSettings, WindowSettings

Dispatch = Callable[[list[Job]], None]


class MicroBatcher:
    """Holds decoded jobs until the window has room, then dispatches them.

    Args:
        window: the in-flight window; each dispatched job takes one slot.
        dispatch: receives each batch (it must not block).
        linger_s: how long a batch that is not full waits for more jobs.
        max_batch: the most jobs in one batch.
        reserve: slots interactive jobs may use beyond the window's limit.
        bulk_room: of the window's free slots, how many bulk jobs may take now (the lanes'
            bulk limit); all of them by default.
    """

    def __init__(
        self,
        window: AdmissionWindow,
        dispatch: Dispatch,
        linger_s: float,
        max_batch: int,
        *,
        reserve: int = 0,
        bulk_room: Callable[[int], int] | None = None,
    ) -> None:
        self._window = window
        self._dispatch = dispatch
        self._linger_s = linger_s
        self._max_batch = max_batch
        self._reserve = reserve
        self._bulk_room = bulk_room or (lambda free: free)
        self._pending: dict[Lane, deque[Job]] = {lane: deque() for lane in LANES}
        self._arrived = asyncio.Event()

    @classmethod
    def configured(
        cls,
        window: AdmissionWindow,
        dispatch: Dispatch,
        settings: WindowSettings,
        lanes: LaneSettings,
        bulk_room: Callable[[int], int],
    ) -> MicroBatcher:
        """The batcher ``settings`` and ``lanes`` configure (a reserve only with the lane)."""
        reserve = lanes.reserve if lanes.interactive_topic else 0
        linger_s = settings.linger_ms / 1000
        return cls(
            window, dispatch, linger_s, settings.max_batch, reserve=reserve, bulk_room=bulk_room
        )

    def __len__(self) -> int:
        return sum(len(queue) for queue in self._pending.values())

    def queued(self, lane: Lane) -> int:
        """Jobs of ``lane`` waiting for a slot."""
        return len(self._pending[lane])

    def add(self, job: Job) -> None:
        """Queues a decoded, routed job."""
        self._pending[job.lane].append(job)
        self._arrived.set()
        if job.lane == INTERACTIVE:
            self._window.wake()  # it may fit in the reserve of a full window

    def drop(self, partitions: Iterable[PartitionKey]) -> list[Job]:
        """Removes and returns queued jobs of revoked partitions (never admitted)."""
        gone = set(partitions)
        dropped: list[Job] = []
        for lane, queue in self._pending.items():
            lost = [job for job in queue if job.source in gone]
            if lost:
                self._pending[lane] = deque(job for job in queue if job.source not in gone)
                dropped += lost
        return dropped

    def clear(self) -> list[Job]:
        """Removes every queued job (shutdown: they stay uncommitted and are redelivered)."""
        dropped = [job for queue in self._pending.values() for job in queue]
        for queue in self._pending.values():
            queue.clear()
        return dropped

    async def run(self) -> None:
        """Dispatches forever; cancel the task to stop."""
        while True:
            await self._ready()
            bulk = self._pending[BULK]
            if (
                self._linger_s > 0
                and not self._pending[INTERACTIVE]
                and len(bulk) < min(self._max_batch, self._window.free())
            ):
                await asyncio.sleep(self._linger_s)
            batch = self._take(INTERACTIVE, self._window.free(self._reserve), [])
            batch = self._take(BULK, self._bulk_room(self._window.free() - len(batch)), batch)
            if not batch:
                continue  # the window closed during the linger
            self._window.admit(len(batch))
            self._dispatch(batch)

    def _take(self, lane: Lane, room: int, batch: list[Job]) -> list[Job]:
        """``batch`` with up to ``room`` jobs of ``lane`` added (interactive first: bulk
        only when no interactive job is left waiting)."""
        queue = self._pending[lane]
        if lane == BULK and self._pending[INTERACTIVE]:
            return batch
        count = min(len(queue), room, self._max_batch - len(batch))
        return batch + [queue.popleft() for _ in range(max(0, count))]

    def _admissible(self) -> bool:
        if self._pending[INTERACTIVE] and self._window.free(self._reserve) > 0:
            return True
        return bool(self._pending[BULK]) and self._bulk_room(self._window.free()) > 0

    async def _ready(self) -> None:
        """Waits until a queued job can be admitted."""
        while not self._admissible():
            if not len(self):
                self._arrived.clear()
                await self._arrived.wait()
            else:
                await self._window.wait_change()
