"""`DeadLetter`: a request the worker gave up on, as ``collect`` counts it.

A dead letter carries the request's original key, value and headers, plus the worker's headers
(``evalstream.error.reason`` and ``evalstream.source.*``; see DESIGN, "Wire contract"). It answers
a request as surely as a result does, so ``collect --expect`` counts it toward the total; it is
never written to the results file, which holds results only.
"""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import Message
from pydantic import ValidationError

from consumer.schemas import parse_request
from producer.validation import request_id

REASON_HEADER = "evalstream.error.reason"
_SOURCE_HEADERS = (
    "evalstream.source.topic",
    "evalstream.source.partition",
    "evalstream.source.offset",
)
UNKNOWN_REASON = "unknown"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead-lettered request.

    Attributes:
        request_id: The request's id (from its value, else its key, else where it was read).
        reason: The worker's reason (``unknown_model``, ``invalid_request``, ...).
        partition: The dead-letter topic's partition it was read from.
        offset: Its offset there.
    """

    request_id: str
    reason: str
    partition: int
    offset: int

    @classmethod
    def of(cls, message: Message, partition: int, offset: int) -> DeadLetter:
        """Reads a dead-letter message; never fails, whatever the original bytes were."""
        raw = message.headers() or []
        pairs = raw.items() if isinstance(raw, dict) else raw
        headers: dict[str, bytes] = {}
        for name, value in pairs:
            if value is not None:
                headers[name] = value if isinstance(value, bytes) else value.encode()
        reason = _text(headers.get(REASON_HEADER)) or UNKNOWN_REASON
        return cls(_identity(message, headers, partition, offset), reason, partition, offset)


def _identity(message: Message, headers: dict[str, bytes], partition: int, offset: int) -> str:
    """The id that a result of the same request would carry, or the best stand-in.

    The value is the request byte for byte, so its id is the one its result would have; the key
    (the request id unless published unkeyed) serves where the value is not a request or was
    omitted; the source coordinates, unique per request message, serve where neither does.
    """
    value = message.value()
    if value:
        try:
            return request_id(parse_request(value))
        except (ValidationError, ValueError, TypeError):
            pass
    key = _text(message.key())
    if key:
        return key
    source = [_text(headers.get(name)) for name in _SOURCE_HEADERS]
    if all(source):
        return "dead-letter:" + "/".join(part or "" for part in source)
    return f"dead-letter:{partition}/{offset}"


def _text(value: str | bytes | None) -> str | None:
    """A header or key as text (None when absent or empty)."""
    if value is None:
        return None
    text = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
    return text or None
