"""The in-flight window: how many requests may be inside the engine at once.

A counting gate whose limit can move while requests are in flight: lowering it
never cancels work, it only stops new admissions until enough requests finish.
It also owns the read-ahead around it (``window.buffer``): how many consumed requests
may wait for a slot before the partitions pause, and when they resume.
"""

from __future__ import annotations

import asyncio


class AdmissionWindow:
    """Admits up to ``limit`` concurrent engine requests.

    Args:
        limit: initial limit.
        buffer: requests read ahead of the window (``window.buffer``).
        closed: start closed (no admissions until `open`).
    """

    def __init__(self, limit: int, *, buffer: int = 1, closed: bool = False) -> None:
        self._limit = max(1, limit)
        self._buffer = max(1, buffer)
        self._in_flight = 0
        self._open = not closed
        self._changed = asyncio.Event()

    @property
    def limit(self) -> int:
        """Current limit."""
        return self._limit

    @property
    def high_water(self) -> int:
        """Requests the worker may hold (buffered, in flight, unacknowledged) before pausing.

        The buffer does not scale with the window: a small window on a fast engine would
        otherwise pause and resume the partitions every few milliseconds.
        """
        return self._limit + self._buffer

    @property
    def resume_at(self) -> int:
        """The free room at which paused partitions resume: half the buffer.

        Each pause drops librdkafka's prefetched data and fetching restarts up to
        ``fetch.wait.max.ms`` later, so the half still buffered must outlast that.
        """
        return max(1, self._buffer // 2)

    @property
    def in_flight(self) -> int:
        """Requests admitted and not yet released."""
        return self._in_flight

    @property
    def is_open(self) -> bool:
        """False while the circuit is open or the worker drains."""
        return self._open

    def free(self, reserve: int = 0) -> int:
        """How many more requests may be admitted now, ``reserve`` slots beyond the limit."""
        return max(0, self._limit + reserve - self._in_flight) if self._open else 0

    def set_limit(self, limit: int) -> None:
        """Moves the limit; takes effect for the next admission."""
        self._limit = max(1, limit)
        self._notify()

    def open(self) -> None:
        """Allows admissions again."""
        self._open = True
        self._notify()

    def close(self) -> None:
        """Stops admissions; requests in flight carry on."""
        self._open = False
        self._notify()

    def admit(self, count: int) -> None:
        """Takes ``count`` slots; the caller checked `free` first."""
        self._in_flight += count

    def release(self, count: int = 1) -> None:
        """Returns slots of finished requests."""
        self._in_flight -= count
        self._notify()

    async def wait_change(self) -> None:
        """Waits until a slot frees up, the limit moves, the window opens/closes, or `wake`."""
        await self._changed.wait()

    def wake(self) -> None:
        """Wakes `wait_change` waiters (a request that may use the reserve arrived)."""
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()
