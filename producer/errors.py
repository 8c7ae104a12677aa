"""Errors raised by the producer-side tools.

One root, one subclass per stage, and a ``retriable`` class flag telling callers whether trying
the same thing again can succeed.
"""

from __future__ import annotations

from typing import ClassVar


class ProducerError(Exception):
    """Root of every error the ``producer`` package raises on purpose."""

    retriable: ClassVar[bool] = False


class InputError(ProducerError):
    """The command line or an input file cannot be used as given (bad mapping, unknown format)."""


class InvalidRequestError(InputError, ValueError):
    """A request does not match the wire contract; nothing was sent.

    Attributes:
        reason: Why, naming the offending fields (``candidate.text: Field required``).
        line: The 1-based line of the input file, when the request came from one.
    """

    def __init__(self, reason: str, *, line: int | None = None) -> None:
        self.reason = reason
        self.line = line
        super().__init__(f"line {line}: {reason}" if line is not None else reason)


class DeliveryError(ProducerError):
    """The broker did not acknowledge one or more messages.

    Attributes:
        topic: The topic the messages were produced to.
        failed: How many messages were not acknowledged.
        first_error: The first error librdkafka reported, if any.
    """

    retriable = True

    def __init__(self, topic: str, failed: int, first_error: str | None) -> None:
        self.topic = topic
        self.failed = failed
        self.first_error = first_error
        detail = f": {first_error}" if first_error else ""
        super().__init__(f"{failed} message(s) to {topic} were not delivered{detail}")


class ResultStoreError(ProducerError):
    """Collected results cannot be written where they were asked to go."""


class StatusError(ProducerError):
    """Consumer-group offsets or end offsets cannot be read."""

    retriable = True


class ReportInputError(InputError):
    """A file given to ``report`` is missing, of an unknown kind, or not a results file."""


class BrokerError(ProducerError):
    """Kafka cannot be reached in time, or lacks a topic the command needs."""
