"""ResultView: the facts of native results and OpenAI batch output lines.

The builders here are shared by the other producer tests that need results on the wire.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from consumer.schemas import parse_result
from producer.result_view import ResultView

pytestmark = pytest.mark.timeout(30)

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def native_result(
    request_id: str,
    *,
    score: int | None = 70,
    status: str = "ok",
    reason: str | None = None,
    end_to_end_s: float = 1.5,
    completed_at: datetime = T0,
    variant: str | None = None,
) -> dict[str, Any]:
    """A valid `EvaluationResult` as a dict."""
    ok = status == "ok"
    return {
        "id": request_id,
        "status": status,
        "evaluation": {
            "score": score,
            "recommendation": "yes",
            "strengths": ["Runs Kafka in production"],
            "concerns": ["No Rust experience"],
            "summary": "Solid streaming background.",
        }
        if ok
        else None,
        "error": None if ok else {"reason": reason or "invalid_output", "message": "bad JSON"},
        "raw_output": "{}",
        "model": "sim-model",
        "backend": "openai",
        "variant": variant,
        "prompt_version": "v1",
        "usage": {"prompt_tokens": 1200, "completion_tokens": 80},
        "timings": {"queued_s": 0.1, "inference_s": 1.2, "end_to_end_s": end_to_end_s},
        "attempts": 1,
        "worker_id": "worker-0",
        "source": {"topic": "evalstream.requests", "partition": 0, "offset": 7},
        "metadata": {"team": "search"},
        "completed_at": completed_at.isoformat(),
    }


def batch_output(
    custom_id: str,
    *,
    score: int | None = 55,
    status_code: int = 200,
    error: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A valid OpenAI batch output line as a dict (the evaluation in the first choice)."""
    content = json.dumps(
        {
            "score": score,
            "recommendation": "maybe",
            "strengths": ["Broad Python experience"],
            "concerns": ["short tenure"],
            "summary": "Mixed record so far.",
        }
    )
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "sim-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 900, "completion_tokens": 60, "total_tokens": 960},
    }
    response = None if error else {"status_code": status_code, "request_id": "r1", "body": body}
    return {
        "id": f"batch_req_{custom_id}",
        "custom_id": custom_id,
        "response": response,
        "error": error,
    }


def encode(data: dict[str, Any]) -> bytes:
    """The message value of a result dict."""
    return json.dumps(data).encode()


def test_native_result_facts() -> None:
    raw = native_result("req-1", score=81, end_to_end_s=2.5, variant="b")
    view = ResultView.of(parse_result(encode(raw)))
    assert (view.request_id, view.kind, view.status, view.error_reason) == (
        "req-1",
        "native",
        "ok",
        None,
    )
    assert (view.score, view.recommendation, view.variant) == (81, "yes", "b")
    assert (view.end_to_end_s, view.prompt_tokens, view.attempts) == (2.5, 1200, 1)
    assert view.completed_at == T0


def test_native_error_result_has_reason_and_no_score() -> None:
    raw = native_result("req-2", status="error", reason="timeout")
    view = ResultView.of(parse_result(encode(raw)))
    assert (view.status, view.error_reason, view.score) == ("error", "timeout", None)


def test_batch_line_score_comes_from_the_completion_and_time_from_kafka() -> None:
    stamp = T0 + timedelta(seconds=9)
    view = ResultView.of(parse_result(encode(batch_output("c-1", score=42))), stamp)
    assert (view.request_id, view.kind, view.status) == ("c-1", "openai-batch", "ok")
    assert (view.score, view.recommendation, view.model) == (42, "maybe", "sim-model")
    assert (view.prompt_tokens, view.completion_tokens) == (900, 60)
    assert view.completed_at == stamp


def test_batch_line_failures_are_errors_with_a_reason() -> None:
    http = ResultView.of(parse_result(encode(batch_output("c-2", status_code=500))))
    assert (http.status, http.error_reason, http.score) == ("error", "http_500", None)
    failed = batch_output("c-3", error={"code": "engine_timeout", "message": "took too long"})
    coded = ResultView.of(parse_result(encode(failed)))
    assert (coded.status, coded.error_reason) == ("error", "engine_timeout")


def test_batch_line_with_unparseable_content_is_ok_without_score() -> None:
    raw = batch_output("c-4")
    raw["response"]["body"]["choices"][0]["message"]["content"] = "not json"
    view = ResultView.of(parse_result(encode(raw)))
    assert (view.status, view.score) == ("ok", None)
