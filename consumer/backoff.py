"""Waiting and retrying with backoff: the one primitive every retry of the worker uses.

Each schedule is named here, so every delay of the service reads in one place; the
engine-call retries take theirs from ``retry.*`` settings (see `consumer.failure_table`).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

ExceptionTypes = type[BaseException] | tuple[type[BaseException], ...]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential delays: ``initial_s``, doubling each attempt, capped at ``max_s``.

    Attributes:
        initial_s: the delay after the first failure.
        max_s: the largest delay.
        jitter: full jitter (a uniform draw below the delay), so that many waiters
            (requests, workers) do not retry in step.
    """

    initial_s: float
    max_s: float
    jitter: bool = False

    def delay(self, attempt: int) -> float:
        """The delay after failed attempt number ``attempt`` (1-based)."""
        ceiling = min(self.max_s, self.initial_s * 2 ** max(0, attempt - 1))
        return random.uniform(0, ceiling) if self.jitter else ceiling

    async def until(
        self,
        probe: Callable[[], Awaitable[bool]],
        on_wait: Callable[[int], None] | None = None,
    ) -> None:
        """Calls ``probe`` until it returns True, sleeping the backoff between calls.

        Args:
            probe: the condition, e.g. a health check.
            on_wait: called with the attempt number before each sleep (to log).
        """
        attempt = 0
        while not await probe():
            attempt += 1
            if on_wait is not None:
                on_wait(attempt)
            await asyncio.sleep(self.delay(attempt))

    async def retry(
        self,
        action: Callable[[], Awaitable[T]],
        retry_on: ExceptionTypes,
        *,
        give_up_on: ExceptionTypes = (),
        on_retry: Callable[[BaseException, float], None] | None = None,
    ) -> T:
        """Runs ``action`` until it succeeds; retries ``retry_on`` errors without a cap.

        The cap is the caller's: cancelling the calling task ends the retries.

        Args:
            action: the attempt.
            retry_on: the errors worth another attempt.
            give_up_on: errors raised at once even where ``retry_on`` would match them.
            on_retry: called with the error and the coming delay (to log).

        Returns:
            What the successful attempt returned.
        """
        attempt = 0
        while True:
            try:
                return await action()
            except give_up_on:
                raise
            except retry_on as exc:
                attempt += 1
                delay = self.delay(attempt)
                if on_retry is not None:
                    on_retry(exc, delay)
                await asyncio.sleep(delay)


# An engine that is down or still loading its model (start-up, and the open circuit).
ENGINE_PROBE = Backoff(initial_s=0.5, max_s=10.0)
# A delivery to the results or dead-letter topic that failed (broker down, leader moving).
DELIVERY = Backoff(initial_s=0.2, max_s=10.0, jitter=True)
# The producer's local queue is full: its poll thread frees room within milliseconds.
QUEUE_FULL = Backoff(initial_s=0.01, max_s=0.01)
