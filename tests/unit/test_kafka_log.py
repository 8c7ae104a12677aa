"""KafkaLog: librdkafka's lines folded and rate-limited, with an injected clock."""

from __future__ import annotations

import logging

import pytest

from consumer.kafka_log import KafkaLog

pytestmark = pytest.mark.timeout(10)

REFUSED = "127.0.0.1:9/bootstrap: Connect to ipv4#127.0.0.1:9 failed: Connection refused"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(text: str) -> logging.LogRecord:
    """A record as confluent-kafka makes it: ``log(level, "%s [%s] %s", fac, name, text)``."""
    return logging.LogRecord(
        "consumer.kafka", 3, "", 0, "%s [%s] %s", ("FAIL", "rdkafka#1", text), None
    )


def test_connection_failures_become_one_line_at_a_slowing_interval() -> None:
    clock = Clock()
    log = KafkaLog("127.0.0.1:9", clock)
    passed = []
    for _ in range(600):  # ten minutes of an attempt a second
        r = record(REFUSED)
        if log.filter(r):
            passed.append((clock.now - 1000.0, r.getMessage()))
        clock.now += 1.0
    assert [t for t, _m in passed] == [0.0, 10.0, 30.0, 90.0, 270.0, 570.0]
    assert passed[1][1].startswith("cannot reach Kafka at 127.0.0.1:9 (11 attempts over 10 s")
    assert log.problem() is not None


def test_kafka_reached_again_ends_the_episode() -> None:
    clock = Clock()
    log = KafkaLog("127.0.0.1:9", clock)
    log.filter(record(REFUSED))
    clock.now += 61.0
    assert log.problem() is None


def test_any_other_line_repeated_verbatim_passes_once_a_minute() -> None:
    clock = Clock()
    log = KafkaLog("127.0.0.1:9", clock)
    line = "Group coordinator lookup failed"
    assert log.filter(record(line))
    clock.now += 30.0
    assert not log.filter(record(line))
    clock.now += 31.0
    assert log.filter(record(line))
