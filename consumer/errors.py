"""The error hierarchy: one root, one subclass per stage, a ``retriable`` flag.

The failure table (`consumer.failure_table`) decides what happens to each class; the
classes only say what went wrong and where.
"""

from __future__ import annotations

from typing import ClassVar


class EvalstreamError(Exception):
    """Root of every error evalstream raises on purpose.

    Attributes:
        reason: short machine-readable cause, used in dead-letter headers and metrics.
        retriable: whether the same call may succeed if tried again later.
    """

    reason: ClassVar[str] = "error"
    retriable: ClassVar[bool] = False

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason  # type: ignore[misc]  # an instance may refine the class reason


class ConfigError(EvalstreamError):
    """The configuration is invalid or names something that does not exist."""

    reason = "config"


class DecodeError(EvalstreamError):
    """A requests-topic message is not a valid request (never retriable)."""

    reason = "invalid_request"


class DeadlineExpired(EvalstreamError):
    """The request's deadline passed before it was sent to the engine."""

    reason = "expired"


class RoutingError(EvalstreamError):
    """The request names a model no route serves."""

    reason = "unknown_model"


class EngineError(EvalstreamError):
    """The inference engine did not produce a usable reply."""

    reason = "engine_error"

    def __init__(
        self, message: str, *, reason: str | None = None, status_code: int | None = None
    ) -> None:
        super().__init__(message, reason=reason)
        self.status_code = status_code


class EngineUnavailable(EngineError):
    """Connect failure, timeout or 5xx: the engine may be down or restarting."""

    reason = "engine_unavailable"
    retriable = True


class EngineOverloaded(EngineError):
    """The engine asked us to slow down (HTTP 429, Ollama's 503 "server busy")."""

    reason = "engine_overloaded"
    retriable = True


class EngineRejected(EngineError):
    """The engine refused this request itself (HTTP 4xx): retrying cannot help."""

    reason = "engine_rejected"


class InvalidOutput(EngineError):
    """The reply does not validate against the evaluation schema."""

    reason = "invalid_output"


class TruncatedOutput(InvalidOutput):
    """The reply was cut at ``max_tokens`` (``finish_reason`` = ``length``).

    Not repaired: asking again with the same budget would be cut again.
    """

    reason = "truncated"


class SinkError(EvalstreamError):
    """The results or dead-letter topic did not acknowledge a message."""

    reason = "produce_failed"
    retriable = True


class MessageTooLarge(SinkError):
    """The broker or the producer refuses the message for its size: retrying cannot help."""

    reason = "message_too_large"
    retriable = False


class SinkFatal(SinkError):
    """The results producer failed for good (librdkafka's ``fatal()``): no delivery can succeed
    any more; the worker stops, and what was not acknowledged is read again."""

    reason = "producer_fatal"
    retriable = False


class SourceError(EvalstreamError):
    """The requests-topic consumer failed fatally (librdkafka's ``fatal()``): it cannot go on."""

    reason = "consumer_fatal"


class CommitError(EvalstreamError):
    """An offset commit failed fatally (a fenced transactional producer): this process may
    not commit again; a restart resumes from the last commit."""

    reason = "commit_fatal"
