"""Model routing through the real broker: A/B split, explicit models, unknown models."""

from __future__ import annotations

import collections
import json
from collections.abc import Callable

import pytest

from tests.integration.pipeline import Pipeline, produce, read_topic, request_json

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

VARIANTS = [
    {"name": "control", "model": "model-a", "weight": 0.9},
    {"name": "candidate", "model": "model-b", "weight": 0.1},
]


def test_ab_split_lands_within_three_percent_and_is_recorded(
    engine_factory: Callable[..., str], pipeline_factory: Callable[..., Pipeline]
) -> None:
    url = engine_factory("instant", "--model", "model-a", "--model", "model-b")
    pipeline = pipeline_factory(url, 4)
    total = 1000
    explicit = [
        json.dumps({**json.loads(request_json(i)), "model": "model-b"}).encode()
        for i in range(total, total + 20)
    ]
    unknown = json.dumps({**json.loads(request_json(9999)), "model": "no-such-model"}).encode()
    messages: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]] | None]] = [
        (f"req-{i:06d}".encode(), request_json(i), None) for i in range(total)
    ]
    messages += [(None, value, None) for value in explicit] + [(b"unknown", unknown, None)]
    produce(pipeline.bootstrap, pipeline.topics.requests, iter(messages))
    worker = pipeline.worker(
        model="model-a", env={"EVALSTREAM_ENGINE__VARIANTS": json.dumps(VARIANTS)}
    )

    results = read_topic(
        pipeline.bootstrap, pipeline.topics.results, lambda m: len(m) >= total + 20, 120
    )
    dead = read_topic(pipeline.bootstrap, pipeline.topics.dlq, lambda m: len(m) >= 1, 60)
    records = [json.loads(value) for _k, value, _h in results if value]
    split = collections.Counter(r["variant"] for r in records if int(r["id"][4:]) < total)
    print(f"\nA/B split of {total}: {dict(split)}")
    assert sum(split.values()) == total
    assert abs(split["control"] - 900) <= 30  # within ±3% of the configured weights
    assert abs(split["candidate"] - 100) <= 30
    assert {r["model"] for r in records if r.get("variant") == "candidate"} == {"model-b"}
    assert all(r["model"] == "model-b" for r in records if int(r["id"][4:]) >= total)
    assert [(key, dict(h)["evalstream.error.reason"]) for key, _v, h in dead] == [
        (b"unknown", b"unknown_model")
    ]
    assert (
        worker.metric("evalstream_completed_total", variant="candidate") == split["candidate"] + 20
    )
