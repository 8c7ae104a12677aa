"""Overload, injected faults and client disconnects on the engine simulator's real server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from evalstream_local.simulator.server import EngineSimulator

pytestmark = pytest.mark.integration

CHAT = {"messages": [{"role": "user", "content": "Rate the candidate."}], "max_tokens": 50}
SCHEMA = {"type": "object", "properties": {"score": {"type": "integer"}}, "required": ["score"]}
BUSY = {"error": "server busy, please try again.  maximum pending requests exceeded"}


async def eventually(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Waits until ``condition()`` holds, polling; fails after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


@pytest.fixture
async def sim() -> AsyncIterator[EngineSimulator]:
    async with EngineSimulator("vllm", time_scale=50) as simulator:
        yield simulator


@pytest.fixture
async def client(sim: EngineSimulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim.url, timeout=20) as http:
        yield http


async def set_fault(client: httpx.AsyncClient, **fault: Any) -> dict[str, Any]:
    response = await client.post("/_simulator/faults", json=fault)
    assert response.status_code == 200
    return dict(response.json())


async def stats(client: httpx.AsyncClient) -> dict[str, Any]:
    return dict((await client.get("/_simulator/stats")).json())


@pytest.mark.timeout(30)
async def test_ollama_answers_503_past_its_queue_limit() -> None:
    async with (
        EngineSimulator("ollama", num_parallel=1, max_queue=2, time_scale=1.0) as simulator,
        httpx.AsyncClient(base_url=simulator.url, timeout=30) as http,
    ):
        body = {"model": "gemma3:1b", "messages": CHAT["messages"], "stream": False}
        body["options"] = {"num_predict": 5000}
        flights = [asyncio.create_task(http.post("/api/chat", json=body)) for _ in range(3)]
        gauges = simulator.scheduler.gauges
        await eventually(lambda: gauges().running == 1 and gauges().waiting == 2)
        refused = await http.post("/api/chat", json=body)
        assert refused.status_code == 503
        assert refused.json() == BUSY
        refused_v1 = await http.post("/v1/chat/completions", json=CHAT | {"model": "gemma3:1b"})
        assert refused_v1.status_code == 503
        assert refused_v1.json()["error"]["message"] == BUSY["error"]
        for flight in flights:
            flight.cancel()
        await asyncio.gather(*flights, return_exceptions=True)
        await eventually(lambda: gauges().running == 0 and gauges().waiting == 0)
        counts = await stats(http)
        assert counts["rejected"] == 2
        assert counts["aborted"] == 3


@pytest.mark.timeout(30)
async def test_closing_the_request_aborts_the_running_sequence() -> None:
    async with (
        EngineSimulator("vllm", time_scale=1.0) as simulator,
        httpx.AsyncClient(base_url=simulator.url, timeout=30) as http,
    ):
        body = {**CHAT, "max_tokens": 20_000, "ignore_eos": True}
        flight = asyncio.create_task(http.post("/v1/chat/completions", json=body))
        gauges = simulator.scheduler.gauges
        await eventually(lambda: gauges().running == 1 and gauges().generation_tokens_total > 0)
        flight.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flight
        await eventually(lambda: gauges().running == 0)
        assert gauges().finished_total["abort"] == 1
        assert simulator.stats.aborted == 1
        assert simulator.stats.completed == 0


@pytest.mark.timeout(30)
async def test_closing_a_stream_aborts_its_sequence() -> None:
    async with (
        EngineSimulator("vllm", time_scale=1.0) as simulator,
        httpx.AsyncClient(base_url=simulator.url, timeout=30) as http,
    ):
        body = {**CHAT, "max_tokens": 20_000, "ignore_eos": True, "stream": True}
        async with http.stream("POST", "/v1/chat/completions", json=body) as response:
            async for line in response.aiter_lines():
                if '"content": "' in line and '"role"' not in line:
                    break  # a token arrived; hang up mid-stream
        gauges = simulator.scheduler.gauges
        await eventually(lambda: gauges().running == 0 and simulator.stats.aborted == 1)


@pytest.mark.timeout(30)
async def test_hang_accepts_and_never_answers_until_the_client_leaves(
    sim: EngineSimulator, client: httpx.AsyncClient
) -> None:
    await set_fault(client, mode="hang")
    flight = asyncio.create_task(client.post("/v1/chat/completions", json=CHAT))
    await eventually(lambda: sim.stats.received == 1)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.shield(flight), timeout=0.3)
    flight.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await flight
    await eventually(lambda: sim.stats.aborted == 1)
    counts = await stats(client)
    assert counts["fault"]["injected"]["hang"] == 1
    assert counts["completed"] == 0


@pytest.mark.timeout(30)
async def test_error500_answers_in_each_protocols_error_shape() -> None:
    async with (
        EngineSimulator("instant", fault="error500") as simulator,
        httpx.AsyncClient(base_url=simulator.url) as http,
    ):
        v1 = await http.post("/v1/chat/completions", json=CHAT)
        assert v1.status_code == 500
        assert v1.json()["error"]["type"] == "InternalServerError"
        assert v1.json()["error"]["code"] == 500
        native = await http.post(
            "/api/chat", json={"model": "gemma3:1b", "messages": CHAT["messages"]}
        )
        assert native.status_code == 500
        assert isinstance(native.json()["error"], str)
        assert simulator.stats.errors == 2


@pytest.mark.timeout(30)
async def test_malformed_answers_200_with_content_that_is_not_json(
    client: httpx.AsyncClient,
) -> None:
    await set_fault(client, mode="malformed")
    body = {
        **CHAT,
        "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": SCHEMA}},
    }
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.json()["choices"][0]["message"]["content"])


@pytest.mark.timeout(30)
async def test_a_latency_spike_delays_the_answer() -> None:
    async with (
        EngineSimulator("instant", fault="latency_spike", latency_spike_s=0.5) as simulator,
        httpx.AsyncClient(base_url=simulator.url) as http,
    ):
        started = time.monotonic()
        response = await http.post("/v1/completions", json={"prompt": "hi", "max_tokens": 2})
        assert response.status_code == 200
        assert time.monotonic() - started >= 0.5


@pytest.mark.timeout(30)
async def test_rate_and_duration_limit_a_fault(client: httpx.AsyncClient) -> None:
    await set_fault(client, mode="error500", rate=0.0)
    assert (await client.post("/v1/chat/completions", json=CHAT)).status_code == 200
    active = await set_fault(client, mode="error500", duration_s=0.3)
    assert active["mode"] == "error500"
    assert 0 < active["remaining_s"] <= 0.3
    assert (await client.post("/v1/chat/completions", json=CHAT)).status_code == 500
    fault: dict[str, Any] = {}

    async def poll() -> None:
        fault.update((await client.get("/_simulator/faults")).json())

    deadline = time.monotonic() + 5
    while fault.get("mode") != "none":
        assert time.monotonic() < deadline
        await poll()
        await asyncio.sleep(0.02)
    assert (await client.post("/v1/chat/completions", json=CHAT)).status_code == 200


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "body", [{"mode": "explode"}, {"mode": "hang", "rate": 2}, {"mode": "hang", "duration_s": -1}]
)
async def test_an_invalid_fault_is_refused(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await client.post("/_simulator/faults", json=body)
    assert response.status_code == 400
    assert response.json()["error"]
    assert (await client.get("/_simulator/faults")).json()["mode"] == "none"


@pytest.mark.timeout(30)
async def test_stats_account_for_every_request(client: httpx.AsyncClient) -> None:
    await client.post("/v1/chat/completions", json=CHAT)
    await client.post("/v1/chat/completions", json={**CHAT, "model": "nope"})
    counts = await stats(client)
    assert counts["received"] == 2
    assert counts["completed"] == 1
    assert counts["errors"] == 1
    assert counts["by_status"] == {"200": 1, "404": 1}
    assert counts["running"] == 0
    assert counts["waiting"] == 0
