"""A poison message too large for the dead-letter topic: its dead letter goes without its value.

A 10 MB message on a dead-letter topic at the broker's default limit (~1 MB), refused by the
worker's producer or by the broker: the dead letter keeps the reason, the source coordinates
and the original's size, and the partition is not blocked. The other kinds of poison input:
test_poison.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from tests.integration.pipeline import Topics
from tests.integration.poison import MAX_MESSAGE_BYTES, corpus, poison_topics, run_worker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture
def small_dlq_topics(kafka_admin: AdminClient) -> Iterator[Topics]:
    """A requests topic that takes 12 MB messages, a dead-letter topic at the broker's
    default limit (~1 MB)."""
    yield from poison_topics(kafka_admin, {})


@pytest.mark.parametrize(
    "client",
    [{}, {"message.max.bytes": str(MAX_MESSAGE_BYTES)}],
    ids=["refused-by-the-producer", "refused-by-the-broker"],
)
def test_a_dead_letter_over_the_topic_limit_goes_without_its_value(
    engine_factory: Callable[..., str],
    kafka_bootstrap: str,
    small_dlq_topics: Topics,
    tmp_path: Path,
    client: dict[str, str],
) -> None:
    poison = [p for p in corpus() if p.kind == "ten-megabytes"]
    url = engine_factory("instant")
    run = run_worker(url, kafka_bootstrap, small_dlq_topics, poison, tmp_path, client=client)
    assert run.drained, "the oversized dead letter blocked its partition"
    assert len(run.results) == len(run.good)
    [(key, value, headers)] = run.dead
    names = dict(headers)
    partition, offset = run.where["ten-megabytes"]
    assert (key, value) == (poison[0].key, None)
    assert names["evalstream.error.reason"] == b"too_large"
    assert names["evalstream.value.omitted"] == str(len(poison[0].value or b"")).encode()
    assert names["evalstream.source.offset"] == str(offset).encode()
    assert names["evalstream.source.partition"] == str(partition).encode()
