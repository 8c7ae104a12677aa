"""A `consumer.clock.Clock` whose time moves only when the test runs it: exact, no sleeps."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable

# Loop turns that let every task woken by the clock run on to its next sleep. The code under
# test awaits nothing but the clock and coroutines that return at once, so a woken task needs
# one turn; the spare turns cover tasks that wake each other (a feed ending a sample).
_SETTLE_TURNS = 10


class FakeClock:
    """Time that moves from one sleeper's deadline to the next, in deadline order."""

    def __init__(self) -> None:
        self._now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()  # equal deadlines wake in the order they slept

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        deadline = self._now + max(0.0, seconds)
        heapq.heappush(self._sleepers, (deadline, next(self._order), future))
        await future

    async def run_until(self, done: Callable[[], bool], *, limit_s: float) -> None:
        """Wakes the sleepers one deadline at a time until ``done()`` holds.

        Raises:
            AssertionError: nothing is left to wake, or ``limit_s`` of fake time passed.
        """
        end = self._now + limit_s
        while True:
            for _ in range(_SETTLE_TURNS):
                await asyncio.sleep(0)
            if done():
                return
            while self._sleepers and self._sleepers[0][2].done():
                heapq.heappop(self._sleepers)  # a cancelled sleeper
            if not self._sleepers:
                raise AssertionError(f"nothing left to wake at t={self._now}, and not done")
            deadline, _, future = heapq.heappop(self._sleepers)
            if deadline > end:
                raise AssertionError(f"not done within {limit_s} s of fake time")
            self._now = deadline
            future.set_result(None)
