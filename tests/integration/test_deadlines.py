"""Deadlines through the real broker: a request past its deadline never reaches the engine.

Its result says so (status error, reason expired) and its offset is committed like any other.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable

import httpx
import pytest

from consumer.deadlines import HEADER
from tests.integration.in_process import running_worker, worker_settings
from tests.integration.pipeline import Topics, produce, read_topic, request_json

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

LIVE, LATE = 12, 6
Message = tuple[bytes | None, bytes | None, list[tuple[str, bytes]] | None]
PAST = "2020-01-01T00:00:00Z"


def late_request(i: int) -> bytes:
    """A request whose own ``deadline`` field has passed."""
    return json.dumps(json.loads(request_json(i)) | {"deadline": PAST}).encode()


def engine_requests(engine_url: str) -> float:
    """Requests the simulator finished, from its vLLM-style /metrics."""
    text = httpx.get(f"{engine_url}/metrics", timeout=5).text
    return sum(
        float(v) for v in re.findall(r"^vllm:request_success_total\{[^}]*\} (\S+)", text, re.M)
    )


async def test_requests_past_their_deadline_never_reach_the_engine(
    kafka_bootstrap: str, topics: Topics, engine_factory: Callable[..., str]
) -> None:
    engine_url = engine_factory()
    messages: list[Message] = [
        (f"req-{i:06d}".encode(), request_json(i), None) for i in range(LIVE)
    ]
    # Half of the late ones by the field, half by the header (epoch milliseconds).
    for i in range(LIVE, LIVE + LATE):
        if i % 2:
            messages.append((f"req-{i:06d}".encode(), late_request(i), None))
        else:
            header = [(HEADER, b"1577836800000")]
            messages.append((f"req-{i:06d}".encode(), request_json(i), header))
    produce(kafka_bootstrap, topics.requests, iter(messages))
    settings = worker_settings(kafka_bootstrap, topics, engine_url)

    async with running_worker(settings):
        results = await asyncio.to_thread(
            read_topic, kafka_bootstrap, topics.results, lambda m: len(m) >= LIVE + LATE, 90
        )

    by_id = {r["id"]: r for r in (json.loads(v or b"{}") for _k, v, _h in results)}
    expired = {i for i, r in by_id.items() if (r.get("error") or {}).get("reason") == "expired"}
    assert expired == {f"req-{i:06d}" for i in range(LIVE, LIVE + LATE)}
    assert all(by_id[f"req-{i:06d}"]["status"] == "ok" for i in range(LIVE))
    assert all(by_id[i]["attempts"] == 0 for i in expired)
    assert engine_requests(engine_url) == LIVE  # the late ones cost no engine time
