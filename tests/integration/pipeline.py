"""Helpers for end-to-end tests: run workers and the simulator, read topics back."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from confluent_kafka import Consumer, Producer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from consumer.schemas import parse_result, result_key
from evalstream_local.processes import ManagedProcess

SIM_MODEL = "sim-model"


class Worker(ManagedProcess):
    """A worker process and the port of its metrics endpoint."""

    metrics_port: int = 0

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` matching ``labels`` (0 when absent or unreachable)."""
        try:
            text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        except httpx.HTTPError:
            return 0.0
        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    total += sample.value
        return total


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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
    workers: list[Worker] = field(default_factory=list)

    def worker(
        self,
        *extra: str,
        env: dict[str, str] | None = None,
        name: str | None = None,
        model: str = SIM_MODEL,
        backend: str = "openai",
    ) -> Worker:
        """Starts one more worker of the test's group; it serves metrics on ``.metrics_port``."""
        name = name or f"w{len(self.workers)}"
        port = free_port()
        args = [
            "--bootstrap-servers", self.bootstrap, "--group", self.topics.group,
            "--requests-topic", self.topics.requests, "--results-topic", self.topics.results,
            "--dlq-topic", self.topics.dlq, "--backend", backend, "--engine-url", self.engine_url,
            "--model", model, "--metrics-port", str(port), "--worker-id", name, *extra,
        ]  # fmt: skip
        process = Worker(
            [sys.executable, "-m", "consumer", *args],
            env={"EVALSTREAM_KAFKA__COMMIT_INTERVAL_S": "0.5", **(env or {})},
            log_path=self.tmp / f"{name}.log",
        )
        process.metrics_port = port
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
        producer.produce(topic, key=key, value=value, headers=list(headers or []))
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
                    raw = message.headers() or []
                    headers = [
                        (k, v if isinstance(v, bytes) else b"")
                        for k, v in (raw.items() if isinstance(raw, dict) else raw)
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


class TopicWatcher:
    """Reads a topic from the start in a background thread while a test runs."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"watcher-{time.monotonic_ns()}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        self._consumer.subscribe([topic])
        self.values: list[bytes] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = [m.value() for m in self._consumer.consume(500, 0.2) if m.error() is None]
            with self._lock:
                self.values.extend(v for v in batch if v is not None)
        self._consumer.close()

    def ids(self) -> list[str]:
        """Request ids of every result so far, duplicates kept."""
        with self._lock:
            values = list(self.values)
        return [result_key(parse_result(v)) for v in values]

    def distinct(self) -> int:
        """Distinct request ids so far."""
        return len(set(self.ids()))

    def wait_distinct(self, count: int, timeout: float) -> bool:
        """Waits until ``count`` distinct ids arrived."""
        return wait_until(lambda: self.distinct() >= count, timeout)

    def close(self) -> None:
        """Stops reading."""
        self._stop.set()
        self._thread.join()
