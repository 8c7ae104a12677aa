"""The engine simulator's Ollama front-end, against a real server on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from evalstream_local.simulator.server import EngineSimulator

pytestmark = pytest.mark.integration

MODEL = "gemma3:1b"
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "score": {"type": "integer", "minimum": 0, "maximum": 100},
        "recommendation": {"enum": ["strong_yes", "yes", "maybe", "no", "strong_no"]},
        "summary": {"type": "string", "maxLength": 400},
    },
    "required": ["score", "recommendation", "summary"],
}
MESSAGES = [{"role": "user", "content": "Rate this candidate for the job. " * 10}]
DURATIONS = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")


@pytest.fixture
async def sim() -> AsyncIterator[EngineSimulator]:
    async with EngineSimulator("ollama", time_scale=100) as simulator:
        yield simulator


@pytest.fixture
async def client(sim: EngineSimulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim.url, timeout=20) as http:
        yield http


def ndjson(body: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in body.splitlines() if line]


@pytest.mark.timeout(30)
async def test_chat_without_streaming_has_ollamas_shape(client: httpx.AsyncClient) -> None:
    body = {"model": MODEL, "messages": MESSAGES, "format": SCHEMA, "stream": False}
    response = await client.post("/api/chat", json=body)
    assert response.status_code == 200
    data = response.json()
    assert data["model"] == MODEL
    assert data["created_at"].endswith("Z")
    assert data["message"]["role"] == "assistant"
    assert data["done"] is True
    assert data["done_reason"] == "stop"
    doc = json.loads(data["message"]["content"])
    assert 0 <= doc["score"] <= 100
    assert doc["recommendation"] in SCHEMA["properties"]["recommendation"]["enum"]
    assert data["prompt_eval_count"] > 80
    assert data["eval_count"] > 5
    assert all(isinstance(data[k], int) and data[k] >= 0 for k in DURATIONS)
    assert data["total_duration"] >= data["prompt_eval_duration"] + data["eval_duration"]


@pytest.mark.timeout(30)
async def test_chat_streams_ndjson_by_default(client: httpx.AsyncClient) -> None:
    body = {"model": MODEL, "messages": MESSAGES, "format": "json", "options": {"seed": 1}}
    response = await client.post("/api/chat", json=body)
    assert response.headers["content-type"].startswith("application/x-ndjson")
    chunks = ndjson(response.text)
    assert all(c["done"] is False and "total_duration" not in c for c in chunks[:-1])
    final = chunks[-1]
    assert final["done"] is True
    assert final["message"]["content"] == ""
    assert final["done_reason"] == "stop"
    assert final["eval_count"] == len(chunks) - 1
    content = "".join(c["message"]["content"] for c in chunks)
    assert isinstance(json.loads(content), dict)
    again = await client.post("/api/chat", json={**body, "stream": False})
    assert again.json()["message"]["content"] == content


@pytest.mark.timeout(30)
async def test_num_predict_stops_with_done_reason_length(client: httpx.AsyncClient) -> None:
    body = {"model": MODEL, "messages": MESSAGES, "format": SCHEMA, "stream": False}
    body["options"] = {"num_predict": 5}
    data = (await client.post("/api/chat", json=body)).json()
    assert data["done_reason"] == "length"
    assert data["eval_count"] == 5


@pytest.mark.timeout(30)
async def test_generate_answers_in_response(client: httpx.AsyncClient) -> None:
    body = {"model": MODEL, "prompt": "Why is the sky blue?", "stream": False}
    data = (await client.post("/api/generate", json=body)).json()
    assert data["done"] is True
    assert isinstance(data["response"], str)
    assert data["response"]
    streamed = ndjson((await client.post("/api/generate", json={**body, "stream": True})).text)
    assert streamed[-1]["done"] is True
    assert "response" in streamed[0]


@pytest.mark.timeout(30)
async def test_an_unknown_model_is_a_404_with_ollamas_message(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/chat", json={"model": "llama9", "messages": MESSAGES})
    assert response.status_code == 404
    assert response.json() == {"error": "model 'llama9' not found"}
    missing = await client.post("/api/chat", json={"messages": MESSAGES})
    assert missing.status_code == 400
    assert missing.json() == {"error": "model is required"}
    invalid = await client.post(
        "/api/chat", json={"model": MODEL, "messages": MESSAGES, "format": "xml"}
    )
    assert invalid.status_code == 400
    assert "invalid format" in invalid.json()["error"]


@pytest.mark.timeout(30)
async def test_a_prompt_over_num_ctx_is_truncated_not_refused(client: httpx.AsyncClient) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "old question " * 200},
        {"role": "assistant", "content": "old answer " * 200},
        {"role": "user", "content": "the question that counts"},
    ]
    body = {"model": MODEL, "messages": messages, "stream": False, "options": {"num_ctx": 128}}
    data = (await client.post("/api/chat", json=body)).json()
    assert data["done"] is True
    assert data["prompt_eval_count"] < 40
    huge = [{"role": "user", "content": "x" * 4 * 1000}]
    body = {"model": MODEL, "messages": huge, "stream": False, "options": {"num_ctx": 256}}
    data = (await client.post("/api/chat", json=body)).json()
    assert data["prompt_eval_count"] == 256


@pytest.mark.timeout(30)
async def test_tags_ps_version_and_show(client: httpx.AsyncClient) -> None:
    (tag,) = (await client.get("/api/tags")).json()["models"]
    assert tag["name"] == MODEL
    assert tag["model"] == MODEL
    assert len(tag["digest"]) == 64
    assert tag["details"]["format"] == "gguf"
    assert (await client.get("/api/ps")).json() == {"models": []}
    body = {"model": MODEL, "messages": MESSAGES, "stream": False, "keep_alive": "10m"}
    await client.post("/api/chat", json=body)
    (loaded,) = (await client.get("/api/ps")).json()["models"]
    assert loaded["name"] == MODEL
    assert loaded["expires_at"].endswith("Z")
    assert loaded["context_length"] == 4096
    assert (await client.get("/api/version")).json()["version"]
    show = await client.post("/api/show", json={"model": MODEL})
    assert show.status_code == 200
    assert "model_info" in show.json()
    unknown = await client.post("/api/show", json={"model": "nope"})
    assert unknown.status_code == 404


@pytest.mark.timeout(30)
async def test_an_empty_chat_loads_and_keep_alive_zero_unloads(client: httpx.AsyncClient) -> None:
    loaded = (await client.post("/api/chat", json={"model": MODEL, "messages": []})).json()
    assert loaded["done"] is True
    assert loaded["done_reason"] == "load"
    body = {"model": MODEL, "messages": [], "keep_alive": 0}
    unloaded = (await client.post("/api/chat", json=body)).json()
    assert unloaded["done_reason"] == "unload"
    assert (await client.get("/api/ps")).json() == {"models": []}
