"""The failure policy, in one place: ``(stage, error) → action``.

Every error the worker meets on purpose is a subclass of `EvalstreamError` and is raised (or
returned) at one stage; `TABLE` says what happens next, and `rule` finds the entry of the most
specific class. The stages read top to bottom in the order a request meets them:

- **intake**: a message that is not a valid request, or names a model no route serves, is
  dead-lettered with its original bytes;
- **engine**: a retriable error (connect, timeout, 5xx) is retried with exponential backoff
  and full jitter (``retry.*``) up to a cap of attempts counted *while the engine is up*;
  consecutive connect failures open the circuit (`EngineCircuit`): nothing is admitted, the
  requests in flight wait for it to close, and nothing is dead-lettered for an outage; an
  overload (429, Ollama's 503) is retried without counting; a refusal (400, context too long)
  is dead-lettered with the reason;
- **reply**: a reply that fails validation gets one repair attempt, then a result with status
  ``error``; a reply cut at ``max_tokens`` and a request past its deadline get that result at once;
- **evaluation**: an unexpected exception of an evaluation dead-letters its request
  (``internal_error``) instead of losing it;
- **publish**: a delivery that failed is retried until it succeeds (the offset waits); a message
  over the topic's size limit becomes a dead letter (exactly-once too: it must not fence the
  committer), a dead letter over it goes without its value;
- **worker**: a fatal client error, a fenced committer, a consumer that failed for good, or a
  part that died stops the worker (`consumer.supervisor`): one line, exit code 1.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

from consumer.backoff import Backoff
from consumer.errors import (
    CommitError,
    DeadlineExpired,
    DecodeError,
    EngineError,
    EngineOverloaded,
    EngineUnavailable,
    EvalstreamError,
    InvalidOutput,
    MessageTooLarge,
    RoutingError,
    SinkError,
    SinkFatal,
    SourceError,
    TruncatedOutput,
)
from consumer.settings import RetrySettings

Stage = Literal["intake", "engine", "reply", "evaluation", "publish", "worker"]
Action = Literal["dead_letter", "retry", "repair", "error_result", "stop"]


@dataclass(frozen=True, slots=True)
class Rule:
    """What to do after an error.

    Attributes:
        action: ``dead_letter``; ``retry`` (with backoff); ``repair`` (ask again with the
            error, once); ``error_result`` (a result with status ``error``); ``stop`` the
            worker.
        expected: caused by the input, not by us (logged as a warning, not an error).
    """

    action: Action
    expected: bool = False


TABLE: dict[tuple[Stage, type[EvalstreamError]], Rule] = {
    ("intake", DecodeError): Rule("dead_letter", expected=True),
    ("intake", RoutingError): Rule("dead_letter", expected=True),
    ("engine", EngineError): Rule("dead_letter"),  # refused: retrying cannot help
    ("engine", EngineUnavailable): Rule("retry"),
    ("engine", EngineOverloaded): Rule("retry"),
    ("reply", InvalidOutput): Rule("repair"),
    ("reply", TruncatedOutput): Rule("error_result"),  # the same budget would cut it again
    ("reply", DeadlineExpired): Rule("error_result"),
    ("evaluation", EvalstreamError): Rule("dead_letter"),
    ("publish", SinkError): Rule("retry"),
    ("publish", MessageTooLarge): Rule("dead_letter"),
    ("publish", SinkFatal): Rule("stop"),
    ("worker", SourceError): Rule("stop"),
    ("worker", CommitError): Rule("stop"),
    ("worker", EvalstreamError): Rule("stop"),
}


def rule(stage: Stage, error: EvalstreamError) -> Rule:
    """The table's entry for ``error`` at ``stage`` (its most specific class).

    Raises:
        KeyError: the table has no entry (a programming error: every stage's errors are listed).
    """
    for cls in type(error).__mro__:
        found = TABLE.get((stage, cls))
        if found is not None:
            return found
    raise KeyError(f"no failure rule for {type(error).__name__} at stage {stage}")


def caused_by_input(error: EvalstreamError | None) -> bool:
    """Whether the table calls ``error`` the input's fault (logged as a warning)."""
    return any(r.expected and isinstance(error, cls) for (_stage, cls), r in TABLE.items())


@dataclass(frozen=True, slots=True)
class Decision:
    """What one job does after a failed engine call or a bad reply.

    Attributes:
        action: the table's action for the error.
        delay_s: seconds to wait before a retry.
        reason: the dead-letter reason.
        counts: whether this failure counts against the attempt cap.
    """

    action: Action
    delay_s: float = 0.0
    reason: str = ""
    counts: bool = True


@dataclass(slots=True)
class RetryState:
    """One job's retry state, kept by the evaluation that retries it (never on the job).

    Attributes:
        counted: engine calls that count against the cap (the first one included).
        repaired: whether the one repair attempt was used.
    """

    counted: int = 1
    repaired: bool = False


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
    """The table applied to one job's engine calls: backoff, the attempt cap, the circuit."""

    def __init__(self, settings: RetrySettings, circuit: EngineCircuit) -> None:
        self._settings = settings
        self._circuit = circuit
        self._backoff = Backoff(settings.backoff_initial_s, settings.backoff_max_s, jitter=True)

    def backoff(self, attempt: int) -> float:
        """Full-jitter exponential backoff for the given attempt number (1-based)."""
        return self._backoff.delay(attempt)

    def decide(self, error: EvalstreamError, state: RetryState, *, repairable: bool) -> Decision:
        """The decision for ``error`` (an engine error or a bad reply) of one job.

        Args:
            error: what went wrong with the last call.
            state: the job's retries so far (updated: a repair or a counted retry).
            repairable: the reply is text the engine can be asked to correct.
        """
        if isinstance(error, EngineError) and not isinstance(error, InvalidOutput):
            return self._engine(error, state)
        action = rule("reply", error).action
        if action == "repair" and (state.repaired or not repairable):
            action = "error_result"
        state.repaired = state.repaired or action == "repair"
        return Decision(action, reason=error.reason)

    def _engine(self, error: EngineError, state: RetryState) -> Decision:
        if rule("engine", error).action != "retry" or not error.retriable:
            return Decision("dead_letter", reason=error.reason)
        if isinstance(error, EngineUnavailable) and error.reason in ("connect", "timeout"):
            self._circuit.record_failure()
        if self._circuit.is_open:
            # The engine is down: wait for it, and do not count this against the request.
            return Decision("retry", counts=False)
        counts = not isinstance(error, EngineOverloaded)  # overload is our pace, not its fault
        if counts and state.counted >= self._settings.max_attempts:
            return Decision("dead_letter", reason=f"retries_exhausted:{error.reason}")
        delay = self.backoff(max(1, state.counted))
        state.counted += int(counts)
        return Decision("retry", delay_s=delay, counts=counts)
