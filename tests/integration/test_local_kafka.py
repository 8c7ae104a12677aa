"""The local broker: a real round trip, and data that survives restarts and crashes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

# NewTopic's documented home; the package imports it from cimpl without re-exporting it.
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from evalstream_local.broker.kafka import LocalKafka

REPO_ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 60.0

pytestmark = pytest.mark.integration


def _create_topic(bootstrap: str, prefix: str, partitions: int) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    futures[name].result(timeout=WAIT_S)
    return name


def _produce(bootstrap: str, topic: str, values: Sequence[bytes]) -> None:
    """Produces with acks=all; fails unless the broker acknowledged every message."""
    errors: list[KafkaError] = []

    def on_delivery(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            errors.append(error)

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    for index, value in enumerate(values):
        producer.produce(topic, value=value, key=str(index).encode(), on_delivery=on_delivery)
    assert producer.flush(WAIT_S) == 0
    assert errors == []


def _consume(bootstrap: str, topic: str, group: str, count: int) -> list[bytes]:
    """Reads ``count`` messages as ``group`` from its committed offsets, and commits after them."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + WAIT_S
    try:
        while len(values) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error() is not None:
                raise KafkaException(message.error())
            values.append(message.value() or b"")
        if values:
            consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return values


def _committed(bootstrap: str, topic: str, group: str, partitions: int) -> int:
    """The sum over partitions of the group's committed offsets (a missing one counts 0)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        wanted = [TopicPartition(topic, partition) for partition in range(partitions)]
        offsets = consumer.committed(wanted, timeout=WAIT_S)
    finally:
        consumer.close()
    return sum(max(tp.offset, 0) for tp in offsets)


def _values(prefix: str, count: int) -> list[bytes]:
    return [f"{prefix}-{index}".encode() for index in range(count)]


@pytest.mark.timeout(120)
def test_round_trip(
    kafka_bootstrap: str,
    topic_factory: Callable[..., str],
    group_factory: Callable[..., str],
) -> None:
    topic = topic_factory(3)
    sent = _values("round-trip", 30)

    _produce(kafka_bootstrap, topic, sent)
    received = _consume(kafka_bootstrap, topic, group_factory(), len(sent))

    assert sorted(received) == sorted(sent)


@pytest.mark.faults
@pytest.mark.timeout(180)
def test_restart_keeps_messages_and_committed_offsets(
    local_kafka: LocalKafka, group_factory: Callable[..., str]
) -> None:
    bootstrap = local_kafka.bootstrap
    topic = _create_topic(bootstrap, "restart", 2)
    group = group_factory()
    _produce(bootstrap, topic, _values("before", 10))
    assert len(_consume(bootstrap, topic, group, 10)) == 10

    assert local_kafka.restart() == bootstrap
    _produce(bootstrap, topic, _values("after", 5))

    assert _committed(bootstrap, topic, group, 2) == 10
    assert sorted(_consume(bootstrap, topic, group, 5)) == sorted(_values("after", 5))
    assert len(_consume(bootstrap, topic, group_factory(), 15)) == 15


@pytest.mark.faults
@pytest.mark.timeout(180)
def test_new_broker_on_the_same_data_dir_keeps_messages_and_offsets(
    local_kafka: LocalKafka, group_factory: Callable[..., str]
) -> None:
    bootstrap, data_dir, port = local_kafka.bootstrap, local_kafka.data_dir, local_kafka.port
    topic = _create_topic(bootstrap, "same-dir", 1)
    group = group_factory()
    _produce(bootstrap, topic, _values("kept", 8))
    assert len(_consume(bootstrap, topic, group, 5)) == 5
    local_kafka.stop()

    with LocalKafka(data_dir, port) as again:
        assert _committed(again.bootstrap, topic, group, 1) == 5
        everything = _consume(again.bootstrap, topic, group_factory(), 8)

    assert sorted(everything) == sorted(_values("kept", 8))


@pytest.mark.faults
@pytest.mark.timeout(180)
def test_kill_then_restart_keeps_acknowledged_messages(
    local_kafka: LocalKafka, group_factory: Callable[..., str]
) -> None:
    bootstrap = local_kafka.bootstrap
    topic = _create_topic(bootstrap, "killed", 3)
    sent = _values("acked", 200)
    _produce(bootstrap, topic, sent)

    local_kafka.kill()
    assert not local_kafka.running
    local_kafka.restart()

    assert sorted(_consume(bootstrap, topic, group_factory(), len(sent))) == sorted(sent)


@pytest.mark.faults
@pytest.mark.timeout(120)
def test_paused_broker_does_not_answer_until_resumed(local_kafka: LocalKafka) -> None:
    admin = AdminClient({"bootstrap.servers": local_kafka.bootstrap})
    admin.list_topics(timeout=WAIT_S)

    local_kafka.pause()
    try:
        with pytest.raises(KafkaException):
            admin.list_topics(timeout=2.0)
    finally:
        local_kafka.resume()

    assert admin.list_topics(timeout=WAIT_S).brokers


@pytest.mark.timeout(180)
def test_serve_prints_the_bootstrap_first_and_stops_on_sigterm(local_kafka: LocalKafka) -> None:
    data_dir, port = local_kafka.data_dir, local_kafka.port
    local_kafka.stop()
    code = (
        "import sys; from pathlib import Path; from evalstream_local.broker.serve import serve; "
        "sys.exit(serve(Path(sys.argv[1]), int(sys.argv[2]), {'t.requests': 3, 't.dlq': 1}))"
    )
    command = [sys.executable, "-c", code, str(data_dir), str(port)]
    with subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline() == f"bootstrap=127.0.0.1:{port}\n"
            admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"})
            metadata = admin.list_topics(timeout=WAIT_S)
            assert metadata.brokers
            # The topics exist before the bootstrap line: publishing right away works.
            assert len(metadata.topics["t.requests"].partitions) == 3
            assert len(metadata.topics["t.dlq"].partitions) == 1

            proc.send_signal(signal.SIGTERM)
            assert proc.wait(WAIT_S) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
