"""Poison input: each kind of bad message is dead-lettered byte for byte, and nothing stalls.

Every poison message is followed on its partition by a good request, so a worker that
crashed, dropped the rest of a batch or blocked the partition on it would leave a good
request without a result, or the group's committed offset short of the partition's end.
Covered here: every kind of the corpus (``tests/integration/poison.py``), a tombstone, and
batch lines the engine client cannot encode. A dead letter too large for the dead-letter
topic: test_poison_dlq_limit.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from tests.integration.pipeline import SIM_MODEL, Topics
from tests.integration.poison import BIG, TRACE, Poison, by_kind, corpus, poison_topics, run_worker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture
def big_topics(kafka_admin: AdminClient) -> Iterator[Topics]:
    """Requests and dead-letter topics that take 12 MB messages, and a results topic."""
    yield from poison_topics(kafka_admin, BIG)


def test_poison_input_is_dead_lettered_byte_for_byte_and_blocks_nothing(
    engine_factory: Callable[..., str], kafka_bootstrap: str, big_topics: Topics, tmp_path: Path
) -> None:
    poison = [p for p in corpus() if p.kind != "tombstone"]
    assert len(poison) >= 12
    run = run_worker(engine_factory("instant"), kafka_bootstrap, big_topics, poison, tmp_path)
    assert run.alive, "a poison message stopped the worker"
    assert run.exit_code == 0
    assert run.drained, "a partition is blocked"
    result_ids = sorted(json.loads(value or b"{}")["id"] for _k, value, _h in run.results)
    assert result_ids == sorted(run.good), "a good request behind a poison message got no result"
    dead = by_kind(run.dead)
    assert len(run.dead) == len(poison), f"dead letters of {sorted(dead)}"
    problems: dict[str, str] = {}
    for item in poison:
        if item.kind not in dead:
            problems[item.kind] = "no dead letter"
            continue
        key, value, headers = dead[item.kind]
        names = dict(headers)
        partition, offset = run.where[item.kind]
        expected = {
            TRACE: b"\x00\xff" + item.kind.encode(),
            "evalstream.error.reason": item.reason.encode(),
            "evalstream.source.topic": big_topics.requests.encode(),
            "evalstream.source.partition": str(partition).encode(),
            "evalstream.source.offset": str(offset).encode(),
        }
        wrong = {k: names.get(k) for k, v in expected.items() if names.get(k) != v}
        if key != item.key or value != item.value or wrong:
            size = None if value is None else len(value)
            problems[item.kind] = f"key {key!r}, value of {size} bytes, headers {wrong}"
        elif headers[0] != (TRACE, expected[TRACE]):
            problems[item.kind] = "the original headers do not come first"
    assert problems == {}


def test_a_tombstone_is_dead_lettered_as_a_tombstone(
    engine_factory: Callable[..., str], kafka_bootstrap: str, big_topics: Topics, tmp_path: Path
) -> None:
    poison = [p for p in corpus() if p.kind == "tombstone"]
    run = run_worker(engine_factory("instant"), kafka_bootstrap, big_topics, poison, tmp_path)
    assert run.drained
    [(key, value, headers)] = run.dead
    assert dict(headers)["evalstream.error.reason"] == b"empty_value"
    assert (key, value) == (b"poison-tombstone", None)


def _batch_line(kind: str, content: str, extra: str = "") -> bytes:
    # Written by hand: json.dumps would refuse NaN with allow_nan=False and escape the surrogate.
    return (
        f'{{"custom_id": "poison-{kind}", "method": "POST", "url": "/v1/chat/completions", '
        f'"body": {{"model": "{SIM_MODEL}", "messages": [{{"role": "user", "content": '
        f'"{content}"}}]{extra}}}}}'
    ).encode()


def test_a_batch_line_the_engine_client_cannot_encode_still_gets_an_outcome(
    engine_factory: Callable[..., str], kafka_bootstrap: str, big_topics: Topics, tmp_path: Path
) -> None:
    """Valid JSON for Python, but not for the HTTP client: NaN, a lone UTF-16 surrogate."""
    poison = [
        Poison(
            "batch-nan", b"poison-batch-nan", _batch_line("nan", "hi", ', "temperature": NaN'), ""
        ),
        Poison("batch-surrogate", b"poison-batch-surrogate", _batch_line("sur", "\\ud800"), ""),
    ]
    url = engine_factory("instant")
    run = run_worker(url, kafka_bootstrap, big_topics, poison, tmp_path, patience_s=10)
    answered = {json.loads(v or b"{}").get("custom_id") for _k, v, _h in run.results}
    dead = {key for key, _v, _h in run.dead}
    missing = [
        p.kind for p in poison if p.key not in dead and f"poison-{p.kind[6:]}" not in answered
    ]
    assert missing == [], "neither a result nor a dead letter"
    assert run.drained, "the partition's committed offset is stuck at the poison message"
