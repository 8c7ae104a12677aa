"""``evalstream-producer status`` against a real broker: lag from committed and end offsets."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, TopicPartition

from producer import GroupStatus
from tests.integration.test_producer_collect_cli import produce
from tests.integration.test_producer_publish_cli import producer_cli

WAIT_S = 60.0

pytestmark = pytest.mark.integration


def commit(bootstrap: str, group: str, topic: str, partition: int, offset: int) -> None:
    """Commits an offset for a group, as a worker would after finishing work."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    try:
        consumer.commit(offsets=[TopicPartition(topic, partition, offset)], asynchronous=False)
    finally:
        consumer.close()


@pytest.mark.timeout(300)
def test_status_shows_lag_backlog_and_rate(
    kafka_bootstrap: str,
    topic_factory: Callable[..., str],
    group_factory: Callable[..., str],
) -> None:
    topic, group = topic_factory(2), group_factory()
    produce(kafka_bootstrap, topic, [(f"k{n}", b"{}") for n in range(30)])
    with GroupStatus(kafka_bootstrap, group, topic) as status:
        before = status.sample(time.monotonic())
        assert before.backlog == 30
        assert [row.committed for row in before.partitions] == [None, None]
        ends = {row.partition: row.high for row in before.partitions}
        fuller = max(ends, key=lambda partition: ends[partition])
        commit(kafka_bootstrap, group, topic, fuller, ends[fuller] - 2)
        after = status.sample(time.monotonic())
    assert after.partitions[fuller].committed == ends[fuller] - 2
    backlog = 30 - (ends[fuller] - 2)
    assert after.backlog == backlog

    run = producer_cli(
        "status",
        "--bootstrap-servers",
        kafka_bootstrap,
        "--group",
        group,
        "--topic",
        topic,
        "--interval",
        "0",
    )
    assert run.returncode == 0, run.stderr
    assert f"backlog {backlog:,}" in run.stdout
    assert f"group {group}" in run.stdout


@pytest.mark.timeout(120)
def test_status_of_a_missing_topic_fails_cleanly(
    kafka_bootstrap: str, group_factory: Callable[..., str]
) -> None:
    run = producer_cli(
        "status",
        "--bootstrap-servers",
        kafka_bootstrap,
        "--group",
        group_factory(),
        "--topic",
        "no-such-topic-here",
        "--interval",
        "0",
    )
    assert run.returncode == 1
    assert run.stderr.startswith(
        f"error: topic no-such-topic-here does not exist on {kafka_bootstrap}"
    )
    assert len(run.stderr.splitlines()) == 1
