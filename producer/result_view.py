"""`ResultView`: the flat facts of a result of either shape, for sinks and statistics.

A native `EvaluationResult` carries its facts in fields. An OpenAI batch output line carries them
inside the chat completion it wraps: the evaluation is the JSON in the first choice's message, and
the line has no completion time, so the Kafka message timestamp stands in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from consumer.schemas import AnyResult, BatchOutputLine, Evaluation, EvaluationResult


@dataclass(frozen=True, slots=True)
class ResultView:
    """What one result says, whatever its shape.

    Attributes:
        request_id: The request it answers (``id`` or ``custom_id``).
        kind: ``native`` or ``openai-batch``.
        status: ``ok`` or ``error``.
        error_reason: Why it failed (error reason, batch error code or ``http_<status>``), or None.
        completed_at: When the worker finished it (the Kafka timestamp for batch lines).
    """

    request_id: str
    kind: str
    status: str
    error_reason: str | None = None
    score: int | None = None
    recommendation: str | None = None
    model: str | None = None
    backend: str | None = None
    variant: str | None = None
    prompt_version: str | None = None
    attempts: int | None = None
    worker_id: str | None = None
    queued_s: float | None = None
    inference_s: float | None = None
    end_to_end_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    completed_at: datetime | None = None

    @classmethod
    def of(cls, result: AnyResult, timestamp: datetime | None = None) -> ResultView:
        """Flattens a result.

        Args:
            result: A parsed result of either shape.
            timestamp: The Kafka message timestamp, used when the result has no time of its own.
        """
        if isinstance(result, BatchOutputLine):
            return cls._of_batch(result, timestamp)
        return cls._of_native(result)

    @classmethod
    def _of_native(cls, result: EvaluationResult) -> ResultView:
        """Flattens a native result."""
        evaluation = result.evaluation
        return cls(
            request_id=result.id,
            kind="native",
            status=result.status,
            error_reason=result.error.reason if result.error else None,
            score=evaluation.score if evaluation else None,
            recommendation=evaluation.recommendation.value if evaluation else None,
            model=result.model,
            backend=result.backend,
            variant=result.variant,
            prompt_version=result.prompt_version,
            attempts=result.attempts,
            worker_id=result.worker_id,
            queued_s=result.timings.queued_s,
            inference_s=result.timings.inference_s,
            end_to_end_s=result.timings.end_to_end_s,
            prompt_tokens=result.usage.prompt_tokens,
            completion_tokens=result.usage.completion_tokens,
            completed_at=_aware(result.completed_at),
        )

    @classmethod
    def _of_batch(cls, line: BatchOutputLine, timestamp: datetime | None) -> ResultView:
        """Flattens a batch output line, reading the evaluation out of the completion."""
        body: dict[str, Any] = line.response.body if line.response else {}
        status_code = line.response.status_code if line.response else None
        reason: str | None = None
        if line.error is not None:
            reason = line.error.code
        elif status_code is None or not 200 <= status_code < 300:
            reason = f"http_{status_code}"
        evaluation = _completion_evaluation(body) if reason is None else None
        usage = body.get("usage")
        if not isinstance(usage, dict):
            usage = {}
        return cls(
            request_id=line.custom_id,
            kind="openai-batch",
            status="ok" if reason is None else "error",
            error_reason=reason,
            score=evaluation.score if evaluation else None,
            recommendation=evaluation.recommendation.value if evaluation else None,
            model=body.get("model") if isinstance(body.get("model"), str) else None,
            prompt_tokens=_int_or_none(usage.get("prompt_tokens")),
            completion_tokens=_int_or_none(usage.get("completion_tokens")),
            completed_at=_aware(timestamp) if timestamp else None,
        )


def _completion_evaluation(body: dict[str, Any]) -> Evaluation | None:
    """The evaluation in a chat completion's first choice, or None if there is none."""
    try:
        content = body["choices"][0]["message"]["content"]
        return Evaluation.model_validate(json.loads(content))
    except (KeyError, IndexError, TypeError, ValueError, ValidationError):
        return None


def _int_or_none(value: object) -> int | None:
    """The value if it is an int (not a bool), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _aware(moment: datetime) -> datetime:
    """Treats a naive datetime as UTC, so times of different origin compare."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
