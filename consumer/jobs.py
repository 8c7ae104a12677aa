"""A unit of work: one consumed message, decoded, and everything needed to finish it.

Decoding never raises past `decode_job`: a message that is not a valid request
becomes a `DecodeError` carrying the reason, and goes to the dead-letter topic with
its original bytes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from confluent_kafka import Message
from pydantic import ValidationError

from consumer.deadlines import deadline_of
from consumer.errors import DecodeError
from consumer.lanes import BULK, Lane
from consumer.partitions import PartitionKey
from consumer.schemas import AnyRequest, BatchRequestLine, parse_request

RawHeaders = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class Route:
    """Which engine model serves a request, and under which A/B variant."""

    model: str
    backend: str
    variant: str | None
    prompt_version: str


@dataclass(slots=True)
class Job:
    """One request in progress.

    Attributes:
        source: partition and assignment epoch it came from.
        offset: its offset in that partition.
        key: the original message key (kept byte for byte for the dead-letter topic).
        value: the original message value.
        headers: the original message headers.
        timestamp_s: the message's Kafka timestamp (seconds since the epoch).
        consumed_at: monotonic time when the worker received it.
        request: the decoded request (None until decoded successfully).
        attempts: engine calls made so far.
        inference_s: engine time summed over attempts.
        sent_at: monotonic time of the first engine call.
        route: the engine model chosen for it (None until routed).
        deadline_s: when its answer stops being worth anything (epoch seconds), if ever.
        cache_key: its key in the result cache, where the cache is on.
        lane: the lane it came in by (the topic it was consumed from).
    """

    source: PartitionKey
    offset: int
    key: bytes | None
    value: bytes | None
    headers: RawHeaders
    timestamp_s: float
    consumed_at: float = field(default_factory=time.monotonic)
    request: AnyRequest | None = None
    attempts: int = 0
    inference_s: float = 0.0
    sent_at: float | None = None
    route: Route | None = None
    deadline_s: float | None = None
    cache_key: str | None = None
    lane: Lane = BULK

    @property
    def request_id(self) -> str:
        """The request id, or the key, or the coordinates when neither exists."""
        if isinstance(self.request, BatchRequestLine):
            return self.request.custom_id
        if self.request is not None:
            return self.request.id
        if self.key:
            return self.key.decode("utf-8", "replace")
        return f"{self.source.topic}-{self.source.partition}@{self.offset}"


def job_from_message(message: Message, source: PartitionKey, lane: Lane = BULK) -> Job:
    """Wraps a consumed message; decoding is a separate step (`decode_job`)."""
    _kind, timestamp_ms = message.timestamp()
    return Job(
        source=source,
        lane=lane,
        offset=message.offset() or 0,
        key=message.key(),
        value=message.value(),
        headers=_headers(message),
        timestamp_s=timestamp_ms / 1000 if timestamp_ms and timestamp_ms > 0 else time.time(),
    )


def decode_job(job: Job, max_bytes: int) -> DecodeError | None:
    """Parses ``job.value`` into ``job.request``; returns the reason when it is invalid."""
    value = job.value
    if not value:
        return DecodeError("empty message value", reason="empty_value")
    if len(value) > max_bytes:
        return DecodeError(f"value of {len(value)} bytes exceeds {max_bytes}", reason="too_large")
    try:
        job.request = parse_request(value)
    except UnicodeDecodeError as exc:
        return DecodeError(f"value is not UTF-8: {exc}", reason="invalid_utf8")
    except ValidationError as exc:
        return DecodeError(_describe(exc), reason="invalid_schema")
    except RecursionError:
        return DecodeError("JSON nested too deeply", reason="invalid_json")
    except ValueError as exc:
        return DecodeError(f"value is not a JSON object: {exc}", reason="invalid_json")
    try:
        job.deadline_s = deadline_of(job.request, job.headers)
    except ValueError as exc:
        return DecodeError(str(exc), reason="invalid_deadline")
    return None


def _describe(exc: ValidationError) -> str:
    """One line per problem, naming the field: ``candidate.text: Field required``."""
    problems = [
        f"{'.'.join(str(p) for p in error['loc']) or '<root>'}: {error['msg']}"
        for error in exc.errors(include_url=False)[:10]
    ]
    return "; ".join(problems)


def _headers(message: Message) -> RawHeaders:
    """The message headers as a list of (name, bytes); kept for the dead-letter copy."""
    raw = message.headers() or []
    items = raw.items() if isinstance(raw, dict) else raw
    return [(k, v.encode() if isinstance(v, str) else (v or b"")) for k, v in items]
