"""The wire contract: every message on the requests, results and dead-letter topics.

This module is the single source of the contract; `producer` imports it and
`evalstream-producer schema` prints the JSON Schemas below for upstream teams.
Our own topics use ``extra="forbid"`` so a typo upstream is caught at the door
instead of being silently ignored.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    ValidationError,
)

# Identifiers become Kafka keys and SQLite primary keys: bounded, never blank.
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=256, strip_whitespace=True)]
# A resume or job ad; the byte limit of a whole message is enforced before parsing.
LongText = Annotated[str, StringConstraints(min_length=1, max_length=200_000)]

BATCH_CHAT_URL = "/v1/chat/completions"


class _Wire(BaseModel):
    """Base of every model on our own topics: strict about unknown fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Candidate(_Wire):
    """The person being evaluated."""

    id: Identifier
    text: LongText = Field(description="Resume or profile text, plain text or Markdown.")
    name: str | None = None
    headline: str | None = None
    skills: list[str] = Field(default_factory=list, max_length=200)
    years_experience: float | None = Field(default=None, ge=0, le=80)


class Job(_Wire):
    """The position; shared by many candidates, so it leads the prompt (prefix caching)."""

    id: Identifier
    title: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    text: LongText = Field(description="Job description.")


class GenerationParams(_Wire):
    """Per-request overrides of the engine's generation settings."""

    max_tokens: int | None = Field(default=None, ge=1, le=32_768)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    seed: int | None = None


class EvaluationRequest(_Wire):
    """A native candidate evaluation request (key = ``id``)."""

    id: Identifier
    candidate: Candidate
    job: Job
    rubric: str | None = Field(default=None, max_length=50_000)
    model: str | None = Field(default=None, description="Routes to a configured model.")
    params: GenerationParams | None = None
    metadata: dict[str, JsonValue] | None = Field(
        default=None, description="Echoed back untouched in the result."
    )
    deadline: AwareDatetime | None = Field(
        default=None,
        description="After this moment the request is not sent to the engine: its result has "
        "status error, reason expired. Also settable with the evalstream-deadline header.",
    )
    created_at: datetime | None = Field(
        default=None, description="When upstream created it; end-to-end latency starts here."
    )


class BatchRequestLine(_Wire):
    """One line of OpenAI's Batch API input format (also read by ``vllm run-batch``)."""

    custom_id: Identifier
    method: Literal["POST"]
    url: Literal["/v1/chat/completions"]
    body: dict[str, Any]


class Recommendation(StrEnum):
    """The hiring recommendation, strongest first."""

    STRONG_YES = "strong_yes"
    YES = "yes"
    MAYBE = "maybe"
    NO = "no"
    STRONG_NO = "strong_no"


# What a scorer needs, and no more: the engine's grammar enforces these bounds, and they bound
# the reply's length, from which the default ``max_tokens`` is derived (consumer.reply_budget).
# The lower bounds make a reply say something: a schema that allowed empty lists let small
# models close every list at once (SmolLM2-135M: no strength and no concern in any of 20,000
# replies). Up to three points of 8-120 characters each way and a 20-300 character summary:
# 1,121 characters of compact JSON at most (2,313 before), so replies are also cheaper.
# The reasons come before the score, so a model writes its score after its reasons.
MIN_POINTS = 1
MAX_POINTS = 3
POINT_MIN_CHARS = 8
POINT_CHARS = 120
SUMMARY_MIN_CHARS = 20
SUMMARY_CHARS = 300
Point = Annotated[str, StringConstraints(min_length=POINT_MIN_CHARS, max_length=POINT_CHARS)]


class Evaluation(BaseModel):
    """The structured output the engine is constrained to produce (field order is the reply's)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strengths: list[Point] = Field(
        min_length=MIN_POINTS, max_length=MAX_POINTS, description="Short phrases."
    )
    concerns: list[Point] = Field(
        min_length=MIN_POINTS, max_length=MAX_POINTS, description="Short phrases."
    )
    summary: str = Field(
        min_length=SUMMARY_MIN_CHARS, max_length=SUMMARY_CHARS, description="Two sentences."
    )
    score: int = Field(ge=0, le=100, description="Overall fit, 0 (none) to 100 (ideal).")
    recommendation: Recommendation


class Usage(_Wire):
    """Token usage as reported by the engine."""

    prompt_tokens: int = 0
    completion_tokens: int = 0


class Timings(_Wire):
    """Seconds spent in each stage of one request."""

    queued_s: float = Field(description="Consumed from Kafka until sent to the engine.")
    inference_s: float = Field(description="Engine time, all attempts.")
    end_to_end_s: float = Field(description="Request timestamp until the result was produced.")


class SourceRef(_Wire):
    """Where the request came from, for audit and replay."""

    topic: str
    partition: int
    offset: int


class ResultError(_Wire):
    """Why a result has status ``error``."""

    reason: str
    message: str


class EvaluationResult(_Wire):
    """The result of a native request (results topic, key = request id)."""

    id: str
    status: Literal["ok", "error"]
    evaluation: Evaluation | None = None
    error: ResultError | None = None
    raw_output: str | None = None
    model: str
    backend: str
    variant: str | None = None
    prompt_version: str
    usage: Usage
    timings: Timings
    attempts: int
    worker_id: str
    source: SourceRef
    metadata: dict[str, JsonValue] | None = None
    completed_at: datetime
    cached: bool | None = Field(
        default=None, description="True when answered from the result cache (no engine call)."
    )
    cached_from: datetime | None = Field(
        default=None, description="With cached: when the cached evaluation was first produced."
    )


class BatchResponse(_Wire):
    """The ``response`` member of an OpenAI batch output line."""

    status_code: int
    request_id: str
    body: dict[str, Any]


class BatchError(_Wire):
    """The ``error`` member of an OpenAI batch output line."""

    code: str
    message: str


class BatchOutputLine(_Wire):
    """The result of a batch line, in OpenAI's batch output format."""

    id: str
    custom_id: str
    response: BatchResponse | None
    error: BatchError | None


AnyRequest = EvaluationRequest | BatchRequestLine
AnyResult = EvaluationResult | BatchOutputLine


def parse_request(value: bytes) -> AnyRequest:
    """Decodes one requests-topic value.

    Raises:
        UnicodeDecodeError: the value is not UTF-8.
        ValueError: the value is not JSON, or not a JSON object.
        ValidationError: the object matches neither request shape.
    """
    text = value.decode("utf-8")
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    if "custom_id" in data:
        return BatchRequestLine.model_validate(data)
    return EvaluationRequest.model_validate(data)


def parse_result(value: bytes) -> AnyResult:
    """Decodes one results-topic value (either shape)."""
    data = json.loads(value)
    if "custom_id" in data:
        return BatchOutputLine.model_validate(data)
    return EvaluationResult.model_validate(data)


def result_key(result: AnyResult) -> str:
    """The request id a result answers (``custom_id`` for batch lines)."""
    return result.custom_id if isinstance(result, BatchOutputLine) else result.id


def json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schemas of every message upstream and downstream teams code against."""
    models: dict[str, type[BaseModel]] = {
        "evaluation_request": EvaluationRequest,
        "batch_request_line": BatchRequestLine,
        "evaluation_result": EvaluationResult,
        "batch_output_line": BatchOutputLine,
        "evaluation": Evaluation,
    }
    return {name: model.model_json_schema() for name, model in models.items()}


__all__ = [
    "BATCH_CHAT_URL",
    "AnyRequest",
    "AnyResult",
    "BatchError",
    "BatchOutputLine",
    "BatchRequestLine",
    "BatchResponse",
    "Candidate",
    "Evaluation",
    "EvaluationRequest",
    "EvaluationResult",
    "GenerationParams",
    "Job",
    "Recommendation",
    "ResultError",
    "SourceRef",
    "Timings",
    "Usage",
    "ValidationError",
    "json_schemas",
    "parse_request",
    "parse_result",
    "result_key",
]
