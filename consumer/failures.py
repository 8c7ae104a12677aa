"""The failure policy, in one place: what happens after each kind of error.

- retriable engine error (connect, timeout, 429, 5xx) → retry with exponential
  backoff and full jitter (`consumer.backoff`, ``retry.*`` settings), up to a cap of
  attempts counted *while the engine is up*;
- engine down (consecutive connect failures) → the circuit opens: no admissions,
  requests in flight wait for it to close, nothing is dead-lettered for it;
- permanent error (400, context too long, unknown model, invalid request) → dead
  letter with the reason;
- reply that fails validation → one repair attempt, then a result with status
  ``error`` and reason ``invalid_output`` (the worker handles that branch).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

from consumer.backoff import Backoff
from consumer.errors import EngineError, EngineOverloaded, EngineUnavailable, EvalstreamError
from consumer.settings import RetrySettings


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with a failed engine call.

    Attributes:
        action: ``retry`` after ``delay_s``, or ``dead_letter`` with ``reason``.
        delay_s: seconds to wait before the retry.
        reason: the dead-letter reason.
        counts: whether this failure counts against the attempt cap.
    """

    action: Literal["retry", "dead_letter"]
    delay_s: float = 0.0
    reason: str = ""
    counts: bool = True


class EngineCircuit:
    """Open after ``threshold`` consecutive connect failures; closed by a health probe."""

    def __init__(self, threshold: int) -> None:
        self._threshold = threshold
        self._failures = 0
        self._closed = asyncio.Event()
        self._closed.set()

    @property
    def is_open(self) -> bool:
        """True while the engine is considered down."""
        return not self._closed.is_set()

    def record_success(self) -> None:
        """A call succeeded: the engine is evidently up."""
        self._failures = 0

    def record_failure(self) -> bool:
        """A call could not reach the engine; returns True when this opened the circuit."""
        self._failures += 1
        if self._failures >= self._threshold and not self.is_open:
            self._closed.clear()
            return True
        return False

    def close(self) -> None:
        """The health probe answered: admit work again."""
        self._failures = 0
        self._closed.set()

    async def wait_closed(self) -> None:
        """Returns once the engine is considered up."""
        await self._closed.wait()


class FailurePolicy:
    """Decides retry or dead letter for a failed engine call."""

    def __init__(self, settings: RetrySettings, circuit: EngineCircuit) -> None:
        self._settings = settings
        self._circuit = circuit
        self._backoff = Backoff(settings.backoff_initial_s, settings.backoff_max_s, jitter=True)

    def backoff(self, attempt: int) -> float:
        """Full-jitter exponential backoff for the given attempt number (1-based)."""
        return self._backoff.delay(attempt)

    def decide(self, error: EvalstreamError, counted_attempts: int) -> Decision:
        """The decision for ``error`` after ``counted_attempts`` counted attempts."""
        if not error.retriable:
            return Decision("dead_letter", reason=error.reason)
        if isinstance(error, EngineUnavailable) and error.reason in ("connect", "timeout"):
            self._circuit.record_failure()
        if self._circuit.is_open:
            # The engine is down: wait for it, and do not count this against the request.
            return Decision("retry", delay_s=0.0, counts=False)
        counts = not isinstance(error, EngineOverloaded)  # overload is our pace, not its fault
        if counts and counted_attempts >= self._settings.max_attempts:
            reason = error.reason if isinstance(error, EngineError) else "retriable"
            return Decision("dead_letter", reason=f"retries_exhausted:{reason}")
        return Decision("retry", delay_s=self.backoff(max(1, counted_attempts)), counts=counts)
