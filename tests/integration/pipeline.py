"""Helpers for end-to-end tests: run workers and the simulator, read topics back."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition

from consumer.local.processes import ManagedProcess
from consumer.schemas import parse_result, result_key

SIM_MODEL = "sim-model"


@dataclass
class Topics:
    """One test's topics and group."""

    requests: str
    results: str
    dlq: str
    group: str


@dataclass
class Pipeline:
    """Starts worker processes for one test and stops them all afterwards."""

    bootstrap: str
    topics: Topics
    engine_url: str
    tmp: Path
    workers: list[ManagedProcess] = field(default_factory=list)

    def worker(
        self, *extra: str, env: dict[str, str] | None = None, name: str | None = None
    ) -> ManagedProcess:
        """Starts one more worker of the test's group."""
        name = name or f"w{len(self.workers)}"
        args = [
            "--bootstrap-servers",
            self.bootstrap,
            "--group",
            self.topics.group,
            "--requests-topic",
            self.topics.requests,
            "--results-topic",
            self.topics.results,
            "--dlq-topic",
            self.topics.dlq,
            "--backend",
            "openai",
            "--engine-url",
            self.engine_url,
            "--model",
            SIM_MODEL,
            "--metrics-port",
            "0",
            "--worker-id",
            name,
            *extra,
        ]
        process = ManagedProcess.python(
            "consumer",
            *args,
            env={"EVALSTREAM_KAFKA__COMMIT_INTERVAL_S": "0.5", **(env or {})},
            log_path=self.tmp / f"{name}.log",
        )
        process.start()
        self.workers.append(process)
        return process

    def stop(self) -> None:
        for process in self.workers:
            process.stop()


def produce(
    bootstrap: str,
    topic: str,
    messages: Iterator[tuple[bytes | None, bytes | None, list[tuple[str, bytes]] | None]],
) -> int:
    """Produces (key, value, headers) tuples with acks=all; returns how many."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5}
    )
    count = 0
    for key, value, headers in messages:
        producer.produce(topic, key=key, value=value, headers=headers)
        count += 1
        producer.poll(0)
    assert producer.flush(30) == 0
    return count


def read_topic(
    bootstrap: str,
    topic: str,
    until: Callable[[list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]]], bool],
    timeout: float,
) -> list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]]:
    """Reads a topic from the start until ``until(messages)`` holds or ``timeout`` passes."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{time.monotonic_ns()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    messages: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not until(messages):
            for message in consumer.consume(500, 0.5):
                if message.error() is None:
                    headers = [
                        (k, v if isinstance(v, bytes) else b"")
                        for k, v in (message.headers() or [])
                    ]
                    messages.append((message.key(), message.value(), headers))
    finally:
        consumer.close()
    return messages


def result_ids(
    messages: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]],
) -> list[str]:
    """The request id of every result message (duplicates kept)."""
    return [result_key(parse_result(value)) for _key, value, _h in messages if value is not None]


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offset per partition (-1001 when none)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        tps = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        consumer.close()


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """The high watermark of each partition."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        }
    finally:
        consumer.close()


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.25) -> bool:
    """Polls ``condition`` until it holds or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def request_json(i: int, *, job: int = 0) -> bytes:
    """A valid native request."""
    return json.dumps(
        {
            "id": f"req-{i:06d}",
            "candidate": {
                "id": f"cand-{i}",
                "text": f"Candidate {i}: ten years of Python and Kafka.",
            },
            "job": {
                "id": f"job-{job}",
                "title": "Backend engineer",
                "text": "Build stream processors.",
            },
        }
    ).encode()
