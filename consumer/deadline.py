"""One time budget shared by every step of a revoke or a shutdown (quix-streams' ``Deadline``).

Drain, commit, leave and flush each take what is left of the same budget, so a slow step
shortens the next ones instead of adding its own timeout on top. (A request's own deadline,
after which its answer is worth nothing, is `consumer.deadlines`.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Deadline:
    """A moment on the monotonic clock.

    Attributes:
        at: when the budget runs out (``time.monotonic`` seconds).
        clock: the clock it is read on.
    """

    at: float
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def after(cls, seconds: float, clock: Callable[[], float] = time.monotonic) -> Deadline:
        """The deadline ``seconds`` from now."""
        return cls(clock() + seconds, clock)

    def remaining(self, floor: float = 0.0) -> float:
        """Seconds left, never below ``floor`` (a step that must at least try gets that)."""
        return max(floor, self.at - self.clock())

    @property
    def expired(self) -> bool:
        """Whether the budget is spent."""
        return self.clock() >= self.at

    def earliest(self, other: Deadline | None) -> Deadline:
        """The earlier of the two (a revoke during a shutdown keeps the shutdown's budget)."""
        return self if other is None or self.at <= other.at else other
