"""A `Worker` driven in-process against the real broker and the engine simulator.

Both committers run the same worker: at-least-once commits through the consumer,
exactly-once in transactions. Every request gets a result or a dead letter, and the
group's committed offsets reach the end of every partition.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from tests.integration.in_process import running_worker, worker_settings
from tests.integration.pipeline import (
    Topics,
    committed,
    end_offsets,
    produce,
    read_topic,
    request_json,
    result_ids,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

PARTITIONS = 2
VALID = 30


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
async def test_an_in_process_worker_answers_every_request_and_commits_it(
    guarantee: str,
    kafka_bootstrap: str,
    topics: Topics,
    engine_factory: Callable[..., str],
) -> None:
    engine_url = engine_factory()
    requests = [(f"req-{i:06d}".encode(), request_json(i), None) for i in range(VALID)]
    requests.append((b"bad", b"{not json", None))
    produce(kafka_bootstrap, topics.requests, iter(requests))
    settings = worker_settings(kafka_bootstrap, topics, engine_url, processing_guarantee=guarantee)

    async with running_worker(settings) as (worker, run):
        results = await asyncio.to_thread(
            read_topic, kafka_bootstrap, topics.results, lambda m: len(m) >= VALID, 90
        )
        dead = await asyncio.to_thread(
            read_topic, kafka_bootstrap, topics.dlq, lambda m: len(m) >= 1, 30
        )
        ends = end_offsets(kafka_bootstrap, topics.requests, PARTITIONS)
        all_committed = await asyncio.to_thread(
            wait_until,
            lambda: committed(kafka_bootstrap, topics.group, topics.requests, PARTITIONS) == ends,
            30,
        )
        assert not run.done()

    assert sorted(result_ids(results)) == [f"req-{i:06d}" for i in range(VALID)]
    assert [(key, value) for key, value, _h in dead] == [(b"bad", b"{not json")]
    assert all_committed, committed(kafka_bootstrap, topics.group, topics.requests, PARTITIONS)
    assert not worker.failed
