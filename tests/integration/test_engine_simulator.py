"""The engine simulator's vLLM/OpenAI front-end, against a real server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from evalstream_local.simulator.server import EngineSimulator

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MODEL = "google/gemma-3-1b-it"
EVALUATION_SCHEMA: dict[str, Any] = {
    "$defs": {
        "Recommendation": {
            "enum": ["strong_yes", "yes", "maybe", "no", "strong_no"],
            "title": "Recommendation",
            "type": "string",
        }
    },
    "additionalProperties": False,
    "properties": {
        "score": {"maximum": 100, "minimum": 0, "title": "Score", "type": "integer"},
        "recommendation": {"$ref": "#/$defs/Recommendation"},
        "strengths": {"items": {"maxLength": 300, "type": "string"}, "type": "array"},
        "concerns": {"items": {"maxLength": 300, "type": "string"}, "type": "array"},
        "summary": {"maxLength": 1500, "title": "Summary", "type": "string"},
    },
    "required": ["score", "recommendation", "strengths", "concerns", "summary"],
    "title": "Evaluation",
    "type": "object",
}
MESSAGES = [
    {"role": "system", "content": "You screen candidates. Answer in JSON."},
    {"role": "user", "content": "Job: backend engineer. " * 40 + "Candidate: ten years of Python."},
]

SIMULATOR = "evalstream_local.simulator.server"  # run as a module: its own main


async def eventually(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Waits until ``condition()`` holds, polling; fails after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def check_evaluation(text: str) -> dict[str, Any]:
    doc = json.loads(text)
    assert set(doc) == set(EVALUATION_SCHEMA["required"])
    assert 0 <= doc["score"] <= 100
    assert isinstance(doc["score"], int)
    assert doc["recommendation"] in ("strong_yes", "yes", "maybe", "no", "strong_no")
    assert all(isinstance(s, str) and len(s) <= 300 for s in doc["strengths"] + doc["concerns"])
    return dict(doc)


def sse_events(body: str) -> list[Any]:
    lines = [line for line in body.split("\n\n") if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    return [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]


@pytest.fixture
async def sim() -> AsyncIterator[EngineSimulator]:
    async with EngineSimulator("vllm", time_scale=50) as simulator:
        yield simulator


@pytest.fixture
async def client(sim: EngineSimulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim.url, timeout=20) as http:
        yield http


def json_schema_format() -> dict[str, Any]:
    schema = {"name": "Evaluation", "schema": EVALUATION_SCHEMA, "strict": True}
    return {"type": "json_schema", "json_schema": schema}


@pytest.mark.timeout(30)
async def test_chat_completion_has_vllms_shape_and_schema_valid_content(
    client: httpx.AsyncClient,
) -> None:
    body = {"model": MODEL, "messages": MESSAGES, "response_format": json_schema_format()}
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    data = response.json()
    assert data["id"].startswith("chatcmpl-")
    assert data["object"] == "chat.completion"
    assert data["model"] == MODEL
    assert isinstance(data["created"], int)
    (choice,) = data["choices"]
    assert choice["index"] == 0
    assert choice["finish_reason"] == "stop"
    assert choice["logprobs"] is None
    assert choice["message"]["role"] == "assistant"
    check_evaluation(choice["message"]["content"])
    usage = data["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens"] > 250
    assert usage["completion_tokens"] > 20


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "extra",
    [
        {"structured_outputs": {"json": EVALUATION_SCHEMA}},
        {"guided_json": EVALUATION_SCHEMA},
        {"guided_json": json.dumps(EVALUATION_SCHEMA)},
    ],
)
async def test_vllms_own_structured_output_fields_are_honoured(
    client: httpx.AsyncClient, extra: dict[str, Any]
) -> None:
    response = await client.post("/v1/chat/completions", json={"messages": MESSAGES, **extra})
    check_evaluation(response.json()["choices"][0]["message"]["content"])


@pytest.mark.timeout(30)
async def test_json_object_mode_answers_a_json_object(client: httpx.AsyncClient) -> None:
    body = {"messages": MESSAGES, "response_format": {"type": "json_object"}}
    response = await client.post("/v1/chat/completions", json=body)
    assert isinstance(json.loads(response.json()["choices"][0]["message"]["content"]), dict)


@pytest.mark.timeout(30)
async def test_a_seed_makes_the_answer_repeatable(client: httpx.AsyncClient) -> None:
    body = {"messages": MESSAGES, "seed": 42, "response_format": json_schema_format()}
    first = await client.post("/v1/chat/completions", json=body)
    second = await client.post("/v1/chat/completions", json=body)
    content = first.json()["choices"][0]["message"]["content"]
    assert content == second.json()["choices"][0]["message"]["content"]


@pytest.mark.timeout(30)
async def test_max_tokens_cuts_the_answer_with_finish_reason_length(
    client: httpx.AsyncClient,
) -> None:
    body = {"messages": MESSAGES, "max_tokens": 8, "response_format": json_schema_format()}
    response = await client.post("/v1/chat/completions", json=body)
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "length"
    assert response.json()["usage"]["completion_tokens"] == 8
    with pytest.raises(json.JSONDecodeError):
        json.loads(choice["message"]["content"])


@pytest.mark.timeout(30)
async def test_ignore_eos_generates_exactly_max_tokens(client: httpx.AsyncClient) -> None:
    body = {"messages": MESSAGES, "max_tokens": 300, "ignore_eos": True}
    body["response_format"] = json_schema_format()
    response = await client.post("/v1/chat/completions", json=body)
    data = response.json()
    assert data["usage"]["completion_tokens"] == 300
    check_evaluation(data["choices"][0]["message"]["content"])  # padded with whitespace


@pytest.mark.timeout(30)
async def test_streamed_chat_sends_role_tokens_finish_usage_and_done(
    client: httpx.AsyncClient,
) -> None:
    body: dict[str, Any] = {
        "messages": MESSAGES,
        "seed": 5,
        "response_format": json_schema_format(),
    }
    plain = (await client.post("/v1/chat/completions", json=body)).json()
    body |= {"stream": True, "stream_options": {"include_usage": True}}
    response = await client.post("/v1/chat/completions", json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    chunks = events[1:-1]
    assert all(
        e["object"] == "chat.completion.chunk" and e["id"] == events[0]["id"] for e in chunks
    )
    content = "".join(e["choices"][0]["delta"]["content"] for e in chunks)
    assert content == plain["choices"][0]["message"]["content"]
    assert [e["choices"][0]["finish_reason"] for e in chunks][-1] == "stop"
    assert all(e["choices"][0]["finish_reason"] is None for e in chunks[:-1])
    assert events[-1]["choices"] == []
    assert events[-1]["usage"] == plain["usage"]


@pytest.mark.timeout(30)
async def test_a_list_of_prompts_is_one_batch_of_separate_sequences(
    sim: EngineSimulator, client: httpx.AsyncClient
) -> None:
    prompts = [f"Candidate {i}: " + "experience " * 30 * (i + 1) for i in range(5)]
    body = {"model": MODEL, "prompt": prompts, "max_tokens": 40, "ignore_eos": True}
    response = await client.post("/v1/completions", json=body)
    data = response.json()
    assert data["id"].startswith("cmpl-")
    assert data["object"] == "text_completion"
    assert [c["index"] for c in data["choices"]] == list(range(5))
    assert all(c["finish_reason"] == "length" and len(c["text"]) == 160 for c in data["choices"])
    assert data["usage"]["completion_tokens"] == 200
    gauges = sim.scheduler.gauges()
    assert gauges.finished_total["length"] == 5
    assert gauges.prompt_tokens_total == data["usage"]["prompt_tokens"]
    assert sim.stats.received == 1
    assert sim.stats.completed == 1


@pytest.mark.timeout(30)
async def test_streamed_batch_completions_interleave_choices(client: httpx.AsyncClient) -> None:
    body = {
        "prompt": ["first prompt", "second, longer prompt " * 20],
        "max_tokens": 12,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    events = sse_events((await client.post("/v1/completions", json=body)).text)
    texts = {0: "", 1: ""}
    for event in events[:-1]:
        (choice,) = event["choices"]
        texts[choice["index"]] += choice["text"]
    assert len(texts[0]) == len(texts[1]) == 48
    assert events[-1]["usage"]["completion_tokens"] == 24


@pytest.mark.timeout(30)
async def test_models_health_version_and_metrics(client: httpx.AsyncClient) -> None:
    models = (await client.get("/v1/models")).json()
    assert models["object"] == "list"
    (card,) = models["data"]
    assert card["id"] == MODEL
    assert card["object"] == "model"
    assert card["owned_by"] == "vllm"
    assert card["max_model_len"] == 32768
    health = await client.get("/health")
    assert health.status_code == 200
    assert health.content == b""
    assert "version" in (await client.get("/version")).json()
    await client.post("/v1/completions", json={"prompt": "hello", "max_tokens": 3})
    metrics = (await client.get("/metrics")).text
    label = f'model_name="{MODEL}"'
    for name in (
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:prompt_tokens_total",
        "vllm:generation_tokens_total",
    ):
        assert f"# TYPE {name} " in metrics
        assert any(line.startswith(name + "{") and label in line for line in metrics.splitlines())
    assert 'vllm:generation_tokens_total{engine="0",' + label + "} 3.0" in metrics
    assert (
        'vllm:request_success_total{engine="0",' + label + ',finished_reason="length"} 1.0'
        in metrics
    )


@pytest.mark.timeout(30)
async def test_an_unknown_model_is_a_404_in_vllms_error_shape(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/chat/completions", json={"model": "gpt-9", "messages": MESSAGES}
    )
    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "message": "The model `gpt-9` does not exist.",
            "type": "NotFoundError",
            "param": "model",
            "code": 404,
        }
    }


@pytest.mark.timeout(30)
async def test_a_priority_without_priority_scheduling_is_a_400(client: httpx.AsyncClient) -> None:
    body = {"messages": MESSAGES, "priority": -1}
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        "Got priority -1 but Priority scheduling is not enabled."
    )
    assert (await client.post("/v1/chat/completions", json=body | {"priority": 0})).is_success


@pytest.mark.timeout(30)
async def test_context_overflow_is_a_400_with_vllms_message(client: httpx.AsyncClient) -> None:
    body = {"messages": MESSAGES, "max_tokens": 32700}
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"].startswith(
        "'max_tokens' or 'max_completion_tokens' is too large: 32700."
    )
    assert "This model's maximum context length is 32768 tokens" in error["message"]
    assert error["param"] == "max_tokens"
    assert error["code"] == 400
    huge = await client.post("/v1/completions", json={"prompt": "x" * 4 * 40_000})
    assert huge.status_code == 400
    assert "your request has 40000 input tokens" in huge.json()["error"]["message"]


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "content", [b"{not json", b'{"messages": "nope"}', b'{"model": "x"}', b"[1, 2]"]
)
async def test_a_malformed_body_is_a_400(client: httpx.AsyncClient, content: bytes) -> None:
    response = await client.post("/v1/chat/completions", content=content)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == 400
    assert error["message"]


@pytest.mark.timeout(30)
async def test_an_api_key_guards_the_v1_routes_only() -> None:
    async with (
        EngineSimulator("instant", api_key="s3cret") as simulator,
        httpx.AsyncClient(base_url=simulator.url) as http,
    ):
        denied = await http.post("/v1/completions", json={"prompt": "hi", "max_tokens": 2})
        assert denied.status_code == 401
        assert denied.json() == {"error": "Unauthorized"}
        assert (await http.get("/v1/models")).status_code == 401
        assert (await http.get("/health")).status_code == 200
        headers = {"Authorization": "Bearer s3cret"}
        allowed = await http.post(
            "/v1/completions", json={"prompt": "hi", "max_tokens": 2}, headers=headers
        )
        assert allowed.status_code == 200


@pytest.mark.timeout(30)
async def test_the_instant_profile_answers_at_once() -> None:
    async with (
        EngineSimulator("instant") as simulator,
        httpx.AsyncClient(base_url=simulator.url) as http,
    ):
        body = {"messages": MESSAGES, "response_format": json_schema_format()}
        started = time.monotonic()
        for _ in range(20):
            response = await http.post("/v1/chat/completions", json=body)
            check_evaluation(response.json()["choices"][0]["message"]["content"])
        assert time.monotonic() - started < 5


@pytest.mark.timeout(30)
def test_the_simulator_runs_in_a_thread_for_synchronous_code() -> None:
    with EngineSimulator("instant").in_thread() as simulator, httpx.Client() as http:
        response = http.post(f"{simulator.url}/v1/completions", json={"prompt": "hi"})
        assert response.status_code == 200
        assert response.json()["choices"][0]["finish_reason"] == "stop"


@pytest.mark.timeout(60)
def test_serve_prints_the_url_first_and_exits_zero_on_sigterm() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", SIMULATOR, "--profile", "instant", "--port", "0"]
    with subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline().strip()
            assert first.startswith("url=http://127.0.0.1:")
            url = first.removeprefix("url=")
            assert int(url.rsplit(":", 1)[1]) > 0
            assert httpx.get(f"{url}/health").status_code == 200
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
