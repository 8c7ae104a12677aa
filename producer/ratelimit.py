"""A token bucket that paces publishing to a target rate.

The bucket never sleeps by itself: it says how long to wait, and the caller spends that time
serving the Kafka producer's delivery callbacks instead of blocking in ``time.sleep``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

# A twentieth of a second of burst smooths scheduling jitter without letting the rate spike.
BURST_SECONDS = 0.05


class TokenBucket:
    """Allows ``rate`` events per second on average, with a small burst.

    Args:
        rate: Events per second; must be positive.
        burst: Bucket capacity in events; defaults to ``max(1, rate * BURST_SECONDS)``.
        clock: Monotonic clock in seconds (injected by tests).
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, rate * BURST_SECONDS)
        self._clock = clock
        self._tokens = self.capacity
        self._updated = clock()

    def _refill(self) -> None:
        """Adds the tokens earned since the last call, up to the capacity."""
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def delay(self) -> float:
        """Seconds until one token is available (0.0 when one is available now)."""
        self._refill()
        return 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) / self.rate

    def try_take(self) -> bool:
        """Takes one token if available.

        Returns:
            True if a token was taken, False if the caller must wait `delay` seconds first.
        """
        self._refill()
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True
