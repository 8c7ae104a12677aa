"""What the worker writes: outcomes (results, OpenAI batch output lines, dead letters)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from consumer.backends.base import Completion
from consumer.errors import EvalstreamError
from consumer.jobs import Job, RawHeaders, Route
from consumer.result_cache import CachedReply
from consumer.schemas import (
    BatchError,
    BatchOutputLine,
    BatchRequestLine,
    BatchResponse,
    Evaluation,
    EvaluationRequest,
    EvaluationResult,
    ResultError,
    SourceRef,
    Timings,
    Usage,
)

HEADER_PREFIX = "evalstream."


@dataclass(frozen=True, slots=True)
class Outcome:
    """The final word on a job: a message for the results or dead-letter topic."""

    job: Job
    destination: Literal["result", "dead_letter"]
    value: bytes | None
    headers: RawHeaders | None
    status: str  # "ok", "error" or the dead-letter reason
    error: EvalstreamError | None = None  # why, where it is not "ok" (the failure table's key)


OutcomeHandler = Callable[[Outcome], None]


def timings(job: Job, now: float | None = None) -> Timings:
    """Stage durations of a finished job."""
    now = time.monotonic() if now is None else now
    sent = job.sent_at if job.sent_at is not None else now
    request = job.request
    started = job.timestamp_s
    if isinstance(request, EvaluationRequest) and request.created_at is not None:
        started = request.created_at.timestamp()
    return Timings(
        queued_s=round(sent - job.consumed_at, 6),
        inference_s=round(job.inference_s, 6),
        end_to_end_s=round(max(0.0, time.time() - started), 6),
    )


def evaluation_result(
    job: Job,
    route: Route,
    worker_id: str,
    completion: Completion | None,
    evaluation: Evaluation | None,
    error: EvalstreamError | None,
    cached: CachedReply | None = None,
) -> bytes:
    """The results-topic value of a native request (``cached``: answered from the cache)."""
    request = job.request
    assert isinstance(request, EvaluationRequest)
    result = EvaluationResult(
        id=request.id,
        status="ok" if evaluation is not None else "error",
        evaluation=evaluation,
        error=None if error is None else ResultError(reason=error.reason, message=error.message),
        raw_output=cached.text if cached else None if completion is None else completion.text,
        model=route.model,
        backend=route.backend,
        variant=route.variant,
        prompt_version=route.prompt_version,
        usage=Usage(
            prompt_tokens=completion.prompt_tokens if completion else 0,
            completion_tokens=completion.completion_tokens if completion else 0,
        ),
        timings=timings(job),
        attempts=job.attempts,
        worker_id=worker_id,
        source=SourceRef(topic=job.source.topic, partition=job.source.partition, offset=job.offset),
        metadata=request.metadata,
        completed_at=datetime.now(UTC),
        cached=True if cached else None,
        cached_from=datetime.fromisoformat(cached.completed_at) if cached else None,
    )
    return result.model_dump_json(exclude_none=True).encode()


def batch_output(job: Job, completion: Completion | None, error: EvalstreamError | None) -> bytes:
    """The results-topic value of an OpenAI batch line (OpenAI's batch output format)."""
    request = job.request
    assert isinstance(request, BatchRequestLine)
    line = BatchOutputLine(
        id=f"batch_req_{uuid.uuid4().hex}",
        custom_id=request.custom_id,
        response=None
        if completion is None
        else BatchResponse(
            status_code=200,
            request_id=str(completion.body.get("id", uuid.uuid4().hex)),
            body=completion.body,
        ),
        error=None if error is None else BatchError(code=error.reason, message=error.message),
    )
    return line.model_dump_json().encode()


def dead_letter_headers(
    job: Job, error: EvalstreamError, worker_id: str, reason: str | None = None
) -> RawHeaders:
    """The original headers followed by ours, which say why and where from."""
    ours = {
        "error.class": type(error).__name__,
        "error.reason": reason or error.reason,
        "error.message": error.message[:2000],
        "source.topic": job.source.topic,
        "source.partition": str(job.source.partition),
        "source.offset": str(job.offset),
        "attempts": str(job.attempts),
        "worker": worker_id,
    }
    return [*job.headers, *((HEADER_PREFIX + k, v.encode()) for k, v in ours.items())]


def dead_letter(
    job: Job, error: EvalstreamError, worker_id: str, reason: str | None = None
) -> Outcome:
    """The dead-letter outcome of ``job``: its original bytes, and headers saying why."""
    headers = dead_letter_headers(job, error, worker_id, reason)
    # The original value byte for byte: a null value (tombstone) stays null.
    return Outcome(job, "dead_letter", job.value, headers, reason or error.reason, error)


def parse_evaluation(text: str) -> Evaluation:
    """Validates the engine's text as an `Evaluation` (raises ValidationError/ValueError).

    Control characters inside strings are accepted (``strict=False``): JSON grammars of
    engines (xgrammar's among them) let a raw tab through where strict JSON wants ``\\t``,
    and the text means the same either way.
    """
    return Evaluation.model_validate(json.loads(text, strict=False))
