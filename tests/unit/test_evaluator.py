"""Evaluator + OpenAI backend request shaping and the failure policy (httpx.MockTransport)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from consumer.backends.openai import OpenAIBackend
from consumer.evaluator import Evaluator, default_max_tokens
from consumer.failure_table import EngineCircuit, FailurePolicy
from consumer.jobs import Job, Route
from consumer.metrics import Metrics
from consumer.partitions import PartitionKey
from consumer.prompts import PromptTemplate, evaluation_schema
from consumer.records import Outcome
from consumer.result_cache import CachedReply, ResultCache
from consumer.schemas import (
    MAX_POINTS,
    POINT_CHARS,
    SUMMARY_CHARS,
    EvaluationResult,
    parse_request,
)
from consumer.settings import EngineSettings, RetrySettings

pytestmark = pytest.mark.timeout(20)

GOOD = {
    "strengths": ["Runs Kafka in production"],
    "concerns": ["No Rust experience"],
    "summary": "Solid streaming background.",
    "score": 81,
    "recommendation": "yes",
}


def chat_reply(content: str, finish: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish,
            }
        ],
        "usage": {"prompt_tokens": 900, "completion_tokens": 60},
    }


def make_job(i: int = 0) -> Job:
    value = json.dumps(
        {
            "id": f"req-{i}",
            "candidate": {"id": "c", "text": "Python, Kafka"},
            "job": {"id": "j", "title": "Engineer", "text": "Streams"},
        }
    ).encode()
    job = Job(PartitionKey("requests", 0, 1), i, b"k", value, [], 0.0)
    job.request = parse_request(value)
    job.route = Route("m", "openai", None, "eval-v2")
    return job


def evaluator(
    handler: Callable[[httpx.Request], httpx.Response],
    *,
    api: str = "chat",
    string_bounds: bool = True,
) -> Evaluator:
    client = httpx.AsyncClient(base_url="http://engine", transport=httpx.MockTransport(handler))
    backend = OpenAIBackend(client, api=api)  # type: ignore[arg-type]
    circuit = EngineCircuit(3)
    retry = RetrySettings(max_attempts=3, backoff_initial_s=0.001, backoff_max_s=0.002)
    metrics = Metrics(CollectorRegistry(), "w")
    return Evaluator(
        backend,
        PromptTemplate(),
        FailurePolicy(retry, circuit),
        circuit,
        metrics,
        EngineSettings.model_validate(
            {"model": "m", "openai": {"api": api}, "string_bounds": string_bounds}
        ),
        "w",
        batches=api == "completions",
    )


async def run(ev: Evaluator, jobs: list[Job]) -> list[Outcome]:
    outcomes: list[Outcome] = []
    await ev.run(jobs, outcomes.append)
    return outcomes


async def test_chat_call_is_structured_and_prefix_first() -> None:
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json=chat_reply(json.dumps(GOOD)))

    (outcome,) = await run(evaluator(handler), [make_job()])
    body = bodies[0]
    assert body["model"] == "m"
    assert body["response_format"]["type"] == "json_schema"
    assert "$ref" not in json.dumps(body["response_format"])  # inlined for every engine
    user = body["messages"][1]["content"]
    assert user.index("Streams") < user.index("Python, Kafka")  # job first, candidate last
    result = EvaluationResult.model_validate_json(outcome.value or b"")
    assert result.status == "ok"
    assert result.evaluation is not None
    assert result.evaluation.score == 81
    assert result.usage.completion_tokens == 60


async def test_invalid_reply_gets_one_repair_then_an_error_result() -> None:
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json=chat_reply('{"score": 900}'))

    (outcome,) = await run(evaluator(handler), [make_job()])
    assert len(bodies) == 2
    repair = bodies[1]["messages"]
    assert repair[-2] == {"role": "assistant", "content": '{"score": 900}'}
    assert "score" in repair[-1]["content"]  # the error names the field
    result = EvaluationResult.model_validate_json(outcome.value or b"")
    assert result.status == "error"
    assert result.error is not None
    assert result.error.reason == "invalid_output"
    assert result.attempts == 2


async def test_truncated_reply_is_final_and_not_repaired() -> None:
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json=chat_reply('{"score": 8', finish="length"))

    (outcome,) = await run(evaluator(handler), [make_job()])
    assert len(bodies) == 1  # a repair with the same budget would be cut again
    result = EvaluationResult.model_validate_json(outcome.value or b"")
    assert result.status == "error"
    assert result.error is not None
    assert result.error.reason == "truncated"
    assert f"max_tokens={bodies[0]['max_tokens']}" in result.error.message
    assert result.raw_output == '{"score": 8'


async def test_default_max_tokens_fits_the_longest_reply_the_schema_allows() -> None:
    bodies: list[dict[str, Any]] = []
    longest = {
        "strengths": ["s" * POINT_CHARS] * MAX_POINTS,
        "concerns": ["c" * POINT_CHARS] * MAX_POINTS,
        "summary": "x" * SUMMARY_CHARS,
        "score": 100,
        "recommendation": "strong_yes",
    }

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json=chat_reply(json.dumps(longest, separators=(",", ":"))))

    (outcome,) = await run(evaluator(handler), [make_job()])
    text = json.dumps(longest, separators=(",", ":"))
    assert bodies[0]["max_tokens"] >= len(text)  # one token per character at worst
    assert EvaluationResult.model_validate_json(outcome.value or b"").status == "ok"


async def test_without_string_bounds_the_grammar_loses_them_and_validation_keeps_them() -> None:
    bodies: list[dict[str, Any]] = []
    too_long = {**GOOD, "strengths": ["s" * (POINT_CHARS + 1)]}

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json=chat_reply(json.dumps(too_long)))

    (outcome,) = await run(evaluator(handler, string_bounds=False), [make_job()])
    sent = json.dumps(bodies[0]["response_format"])
    assert "maxLength" not in sent
    assert "maxItems" in sent
    # max_tokens still comes from the bounded schema: a reply the validator accepts fits.
    assert bodies[0]["max_tokens"] == default_max_tokens(evaluation_schema())
    result = EvaluationResult.model_validate_json(outcome.value or b"")
    assert len(bodies) == 2  # the over-long point failed validation and was repaired once
    assert result.status == "error"
    assert result.error is not None
    assert "strengths" in result.error.message


async def test_raw_control_characters_inside_strings_are_accepted() -> None:
    # xgrammar's JSON grammar lets a raw tab through inside a string; strict JSON does not.
    raw = json.dumps(GOOD).replace("background.", "background.\tFast.")
    assert "\t" in raw

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=chat_reply(raw))

    (outcome,) = await run(evaluator(handler), [make_job()])
    result = EvaluationResult.model_validate_json(outcome.value or b"")
    assert result.status == "ok"
    assert result.evaluation is not None
    assert result.evaluation.summary == "Solid streaming background.\tFast."


async def test_server_errors_are_retried_then_succeed() -> None:
    calls = iter([500, 503, 200])

    def handler(request: httpx.Request) -> httpx.Response:
        status = next(calls)
        if status != 200:
            return httpx.Response(status, json={"error": {"message": "boom"}})
        return httpx.Response(200, json=chat_reply(json.dumps(GOOD)))

    (outcome,) = await run(evaluator(handler), [make_job()])
    assert outcome.destination == "result"
    assert EvaluationResult.model_validate_json(outcome.value or b"").attempts == 3


async def test_context_length_is_dead_lettered_with_reason() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        message = (
            "This model's maximum context length is 2048 tokens. "
            "However, you requested 9000 tokens."
        )
        return httpx.Response(
            400, json={"error": {"message": message, "type": "BadRequestError", "code": 400}}
        )

    job = make_job()
    (outcome,) = await run(evaluator(handler), [job])
    assert outcome.destination == "dead_letter"
    assert outcome.value == job.value
    assert outcome.headers is not None
    assert dict(outcome.headers)["evalstream.error.reason"] == b"context_length"


async def test_retries_exhausted_while_engine_up_dead_letters() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, json={"error": {"message": "always"}})

    (outcome,) = await run(evaluator(handler), [make_job()])
    assert outcome.destination == "dead_letter"
    assert outcome.status == "retries_exhausted:http_500"


async def test_completions_api_sends_one_call_per_micro_batch() -> None:
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        bodies.append(body)
        choices = [
            {"index": i, "text": json.dumps(GOOD), "finish_reason": "stop"}
            for i in range(len(body["prompt"]))
        ]
        return httpx.Response(
            200, json={"choices": choices, "usage": {"prompt_tokens": 30, "completion_tokens": 9}}
        )

    outcomes = await run(evaluator(handler, api="completions"), [make_job(i) for i in range(3)])
    assert len(bodies) == 1
    assert len(bodies[0]["prompt"]) == 3
    assert bodies[0]["structured_outputs"]["json"]["properties"]["score"]["maximum"] == 100
    assert sorted(EvaluationResult.model_validate_json(o.value or b"").id for o in outcomes) == [
        "req-0",
        "req-1",
        "req-2",
    ]


async def test_a_request_past_its_deadline_is_not_sent_and_gets_an_expired_result() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, json=chat_reply(json.dumps(GOOD)))

    late, live = make_job(0), make_job(1)
    late.deadline_s = time.time() - 1
    live.deadline_s = time.time() + 60
    outcomes = await run(evaluator(handler), [late, live])

    assert len(calls) == 1  # only the live one reached the engine
    by_id = {
        o.job.request_id: EvaluationResult.model_validate_json(o.value or b"") for o in outcomes
    }
    assert by_id["req-0"].status == "error"
    assert by_id["req-0"].error is not None
    assert by_id["req-0"].error.reason == "expired"
    assert by_id["req-0"].attempts == 0
    assert by_id["req-1"].status == "ok"


def cached_evaluator(handler: Callable[[httpx.Request], Any], cache: ResultCache) -> Evaluator:
    """An evaluator with a result cache; ``handler`` may be a coroutine (a slow engine)."""
    client = httpx.AsyncClient(base_url="http://engine", transport=httpx.MockTransport(handler))
    circuit = EngineCircuit(3)
    retry = RetrySettings(max_attempts=3, backoff_initial_s=0.001, backoff_max_s=0.002)
    return Evaluator(
        OpenAIBackend(client),
        PromptTemplate(),
        FailurePolicy(retry, circuit),
        circuit,
        Metrics(CollectorRegistry(), "w"),
        EngineSettings(model="m"),
        "w",
        cache=cache,
    )


def same_request(i: int) -> Job:
    """Request ``i``: a new id, the same job and candidate as every other."""
    job = make_job(0)
    job.request = job.request.model_copy(update={"id": f"again-{i}"})  # type: ignore[union-attr]
    return job


async def test_identical_requests_reach_the_engine_once_and_later_ones_are_cached() -> None:
    calls: list[httpx.Request] = []

    async def slow(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        await asyncio.sleep(0.05)  # the engine's time: the others arrive meanwhile
        return httpx.Response(200, json=chat_reply(json.dumps(GOOD)))

    published: list[tuple[str, CachedReply]] = []
    cache = ResultCache(100, lambda key, reply: published.append((key, reply)))
    ev = cached_evaluator(slow, cache)
    together = await run(ev, [same_request(i) for i in range(3)])  # in flight at once
    later = await run(ev, [same_request(9)])

    assert len(calls) == 1
    assert len(published) == 1
    results = [EvaluationResult.model_validate_json(o.value or b"") for o in together + later]
    assert [r.status for r in results] == ["ok"] * 4
    assert sum(bool(r.cached) for r in results) == 3  # all but the one that was evaluated
    first = next(r for r in results if not r.cached)
    # When the original was evaluated (taken as its result was made).
    assert all(
        r.cached_from is not None and abs((r.cached_from - first.completed_at).total_seconds()) < 1
        for r in results
        if r.cached
    )
    assert all(r.attempts == 0 and r.usage.completion_tokens == 0 for r in results if r.cached)


async def test_a_different_prompt_version_misses_the_cache() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, json=chat_reply(json.dumps(GOOD)))

    ev = cached_evaluator(handler, ResultCache(100))
    await run(ev, [same_request(0)])
    other = same_request(1)
    other.route = Route("m", "openai", None, "eval-v3")
    outcomes = await run(ev, [other])
    assert len(calls) == 2
    assert not EvaluationResult.model_validate_json(outcomes[0].value or b"").cached


async def test_an_invalid_reply_is_not_cached() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, json=chat_reply('{"score": 900}'))

    cache = ResultCache(100)
    ev = cached_evaluator(handler, cache)
    await run(ev, [same_request(0)])
    await run(ev, [same_request(1)])
    assert len(cache) == 0
    assert len(calls) == 4  # each request: one call and one repair
