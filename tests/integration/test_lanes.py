"""The interactive lane through the real broker: it overtakes a saturating bulk backlog.

A worker reads a bulk backlog far larger than its window from the requests topic; requests
published to the interactive topic meanwhile are answered while most of the backlog still
waits, with or without reserved slots, under either delivery guarantee. Their offsets are
committed on their own topic.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest

from tests.integration.in_process import running_worker, worker_settings
from tests.integration.pipeline import (
    Topics,
    TopicWatcher,
    committed,
    end_offsets,
    produce,
    request_json,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

BULK, INTERACTIVE, WINDOW = 400, 3, 8


def interactive_request(i: int) -> bytes:
    return json.dumps(json.loads(request_json(i)) | {"id": f"now-{i}"}).encode()


@pytest.mark.parametrize(("reserve", "guarantee"), [(0, "at_least_once"), (4, "exactly_once")])
async def test_interactive_requests_overtake_a_saturating_bulk_backlog(
    reserve: int,
    guarantee: str,
    kafka_bootstrap: str,
    topics: Topics,
    topic_factory: Callable[..., str],
    engine_factory: Callable[..., str],
) -> None:
    engine_url = engine_factory("vllm")
    lane = topic_factory(1, prefix="interactive")
    bulk = ((f"req-{i:06d}".encode(), request_json(i), None) for i in range(BULK))
    produce(kafka_bootstrap, topics.requests, bulk)
    settings = worker_settings(
        kafka_bootstrap,
        topics,
        engine_url,
        {
            "window": {"policy": "fixed", "size": WINDOW, "buffer": BULK - WINDOW},
            "lanes": {"interactive_topic": lane, "reserve": reserve},
        },
        processing_guarantee=guarantee,
    )
    watcher = TopicWatcher(kafka_bootstrap, topics.results)
    try:
        async with running_worker(settings):
            # The backlog flows before the interactive requests come, and the worker may read
            # all of it ahead: in one queue they would wait behind every bulk request.
            assert await asyncio.to_thread(watcher.wait_distinct, WINDOW, 120)
            urgent = (
                (f"now-{i}".encode(), interactive_request(i), None) for i in range(INTERACTIVE)
            )
            produce(kafka_bootstrap, lane, urgent)

            def answered() -> bool:
                return {f"now-{i}" for i in range(INTERACTIVE)} <= set(watcher.ids())

            assert await asyncio.to_thread(wait_until, answered, 60)
            bulk_done = sum(1 for i in watcher.ids() if i.startswith("req-"))
            assert bulk_done < BULK // 2, f"{bulk_done} bulk results before the interactive ones"
            assert await asyncio.to_thread(
                wait_until,
                lambda: (
                    committed(kafka_bootstrap, topics.group, lane, 1)
                    == end_offsets(kafka_bootstrap, lane, 1)
                ),
                30,
            )
    finally:
        watcher.close()
