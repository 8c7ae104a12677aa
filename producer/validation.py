"""Checks input lines against the wire contract before anything reaches Kafka.

A line is validated exactly as the worker will parse it (``consumer.schemas``), so a line that
passes here is never dead-lettered for its shape. Rejections carry a reason that names the
offending field the way pydantic locates it (``candidate.text: Field required``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from consumer.schemas import AnyRequest, BatchRequestLine, EvaluationRequest, parse_request
from producer.errors import InvalidRequestError

# librdkafka's default `message.max.bytes`; a larger line would only fail at delivery time.
DEFAULT_MAX_MESSAGE_BYTES = 1_000_000
# Enough fields to fix a line in one go, few enough to keep one rejection on one screen line.
_MAX_REPORTED_ERRORS = 5
_UTF8_BOM = b"\xef\xbb\xbf"


class RequestFormat(StrEnum):
    """Which request shape input lines are expected to have."""

    AUTO = "auto"
    NATIVE = "native"
    OPENAI_BATCH = "openai-batch"


@dataclass(frozen=True, slots=True)
class ValidLine:
    """A line that matches the contract.

    Attributes:
        number: 1-based line (or CSV record) number in the input.
        request: The parsed request.
        value: The bytes to publish: the line as given, so upstream formatting survives.
    """

    number: int
    request: AnyRequest
    value: bytes

    @property
    def request_id(self) -> str:
        """The request id (``id`` or ``custom_id``), the default message key."""
        return request_id(self.request)


@dataclass(frozen=True, slots=True)
class RejectedLine:
    """A line that does not match the contract and must not be sent.

    Attributes:
        number: 1-based line (or CSV record) number in the input.
        reason: Why, naming the offending fields.
        text: The line as read (undecodable bytes replaced), for a rejects file.
    """

    number: int
    reason: str
    text: str


CheckedLine = ValidLine | RejectedLine


def request_id(request: AnyRequest) -> str:
    """Returns the id a request is keyed by: ``id`` (native) or ``custom_id`` (batch line)."""
    return request.custom_id if isinstance(request, BatchRequestLine) else request.id


def describe_validation_error(error: ValidationError) -> str:
    """Formats a pydantic error as ``field.path: message`` items joined by ``; ``."""
    items = []
    for detail in error.errors(include_url=False):
        location = ".".join(str(part) for part in detail["loc"])
        items.append(f"{location}: {detail['msg']}" if location else str(detail["msg"]))
    shown = items[:_MAX_REPORTED_ERRORS]
    more = len(items) - len(shown)
    return "; ".join(shown) + (f" (+{more} more)" if more > 0 else "")


def validate_object(data: object, fmt: RequestFormat = RequestFormat.AUTO) -> AnyRequest:
    """Validates one decoded JSON value as a request of the given format.

    Args:
        data: The decoded value (normally a dict).
        fmt: The expected shape; ``auto`` tells them apart by ``custom_id`` as the worker does.

    Returns:
        The parsed request.

    Raises:
        InvalidRequestError: The value does not match the contract.
    """
    if not isinstance(data, dict):
        raise InvalidRequestError(f"expected a JSON object, got {_json_type(data)}")
    is_batch = "custom_id" in data
    if fmt is RequestFormat.NATIVE and is_batch:
        raise InvalidRequestError("custom_id: an OpenAI batch line, but --format native was given")
    if fmt is RequestFormat.OPENAI_BATCH and not is_batch:
        raise InvalidRequestError("custom_id: Field required (--format openai-batch)")
    model = BatchRequestLine if is_batch else EvaluationRequest
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequestError(describe_validation_error(exc)) from exc


class LineValidator:
    """Turns raw input lines into `ValidLine` or `RejectedLine` values.

    Args:
        fmt: The expected request shape.
        max_message_bytes: Lines longer than this are rejected (the broker would refuse them).
    """

    def __init__(
        self,
        fmt: RequestFormat = RequestFormat.AUTO,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self.fmt = fmt
        self.max_message_bytes = max_message_bytes

    def check_line(self, number: int, raw: bytes) -> CheckedLine | None:
        """Validates one JSONL line.

        Args:
            number: Its 1-based line number.
            raw: The line, with or without its line ending.

        Returns:
            The checked line, or None for a blank line (skipped, as JSONL readers do).
        """
        raw = raw.rstrip(b"\r\n")
        if number == 1 and raw.startswith(_UTF8_BOM):
            raw = raw[len(_UTF8_BOM) :]
        if not raw.strip():
            return None
        text = raw.decode("utf-8", errors="replace")
        if len(raw) > self.max_message_bytes:
            reason = f"{len(raw):,} bytes exceed the message limit of {self.max_message_bytes:,}"
            return RejectedLine(number, reason, text)
        try:
            if self.fmt is RequestFormat.AUTO:
                request = parse_request(raw)
            else:
                request = validate_object(json.loads(raw), self.fmt)
        except InvalidRequestError as exc:
            return RejectedLine(number, exc.reason, text)
        except ValidationError as exc:
            return RejectedLine(number, describe_validation_error(exc), text)
        except UnicodeDecodeError as exc:
            return RejectedLine(number, f"not valid UTF-8 at byte {exc.start}", text)
        except json.JSONDecodeError as exc:
            return RejectedLine(number, f"invalid JSON: {exc.msg} at column {exc.colno}", text)
        except ValueError as exc:  # parse_request: valid JSON, but not an object
            return RejectedLine(number, str(exc), text)
        return ValidLine(number, request, raw)

    def check_object(self, number: int, data: dict[str, Any]) -> CheckedLine:
        """Validates a request built from another input (a CSV record) and serialises it.

        Args:
            number: The 1-based line number where the record starts.
            data: The request as nested dicts.

        Returns:
            The checked line; a valid one carries compact JSON as its value.
        """
        value = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
        text = value.decode()
        if len(value) > self.max_message_bytes:
            reason = f"{len(value):,} bytes exceed the message limit of {self.max_message_bytes:,}"
            return RejectedLine(number, reason, text)
        try:
            request = validate_object(data, self.fmt)
        except InvalidRequestError as exc:
            return RejectedLine(number, exc.reason, text)
        return ValidLine(number, request, value)


def _json_type(value: object) -> str:
    """Names a decoded JSON value's type the way JSON does."""
    names = {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)
