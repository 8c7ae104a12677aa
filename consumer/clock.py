"""The clock the window's measurements run on: monotonic time in service, a fake in tests.

The window controller and the occupancy sampler read the time and wait between polls
through a `Clock`, so their tests drive time themselves (exact, no sleeps) instead of
racing the wall clock on a busy machine.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """Monotonic seconds, and waiting for a number of them."""

    def now(self) -> float:
        """Seconds since an arbitrary origin; never goes backwards."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Returns once ``seconds`` have passed on this clock."""
        ...


class MonotonicClock:
    """`time.monotonic` and `asyncio.sleep`: the clock of a running worker."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


MONOTONIC = MonotonicClock()
