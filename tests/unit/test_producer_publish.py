"""RequestPublisher and FilePublisher over an in-memory producer; TokenBucket on a fake clock."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from consumer.schemas import EvaluationRequest
from producer.errors import DeliveryError, InvalidRequestError
from producer.file_publish import STDERR_REJECT_LIMIT, FilePublisher, RejectLog
from producer.progress import ProgressDisplay
from producer.publish import PRODUCER_DEFAULTS, RequestPublisher
from producer.ratelimit import TokenBucket
from producer.source import InputFile
from producer.validation import LineValidator
from tests.unit.test_producer_validation import batch, line, native

pytestmark = pytest.mark.timeout(30)


class FakeError:
    """What librdkafka hands the delivery callback on failure."""

    def str(self) -> str:
        return "Broker: Message size too large"


@dataclass
class FakeProducer:
    """Records produced messages; acknowledges them on poll/flush unless told to fail."""

    fail_after: int | None = None
    queue_full_once: bool = False
    sent: list[dict[str, Any]] = field(default_factory=list)
    pending: list[Any] = field(default_factory=list)

    def produce(
        self,
        topic: str,
        value: str | bytes | None = None,
        key: str | bytes | None = None,
        partition: int = -1,
        callback: Any = None,
        on_delivery: Any = None,
        timestamp: int = 0,
        headers: Any = None,
    ) -> None:
        if self.queue_full_once:
            self.queue_full_once = False
            raise BufferError("queue full")
        self.sent.append({"topic": topic, "value": value, "key": key, "headers": headers})
        self.pending.append(on_delivery)

    def poll(self, timeout: float = -1) -> int:
        served = len(self.pending)
        for callback in self.pending:
            failing = self.fail_after is not None and len(self.sent) > self.fail_after
            callback(FakeError() if failing else None, None)
        self.pending.clear()
        return served

    def flush(self, timeout: float = -1) -> int:
        self.poll()
        return 0


def publisher(client: FakeProducer, **kwargs: Any) -> RequestPublisher:
    """A publisher over the fake client."""
    return RequestPublisher("unused:9092", "requests", client=client, **kwargs)


def test_publish_validates_dicts_and_keys_by_request_id() -> None:
    client = FakeProducer()
    with publisher(client) as pub:
        pub.publish(native("req-1"), headers={"source": "ats"})
        pub.publish(batch("b-1"), headers=[("trace", b"\x01")])
        pub.publish(EvaluationRequest.model_validate(native("req-2")))
    assert [m["key"] for m in client.sent] == [b"req-1", b"b-1", b"req-2"]
    assert client.sent[0]["headers"] == [("source", b"ats")]
    assert client.sent[1]["headers"] == [("trace", b"\x01")]
    assert json.loads(client.sent[0]["value"]) == native("req-1")  # only what was given
    assert (pub.produced, pub.delivered, pub.failed) == (3, 3, 0)


def test_invalid_requests_raise_and_send_nothing() -> None:
    client = FakeProducer()
    pub = publisher(client)
    with pytest.raises(InvalidRequestError, match=r"job\.text: Field required"):
        pub.publish(native(job={"id": "j", "title": "T"}))
    with pytest.raises(InvalidRequestError, match="expected a request or a dict"):
        pub.publish("req-1")  # type: ignore[arg-type]
    assert client.sent == []


def test_unkeyed_mode_and_queue_full_retry() -> None:
    client = FakeProducer(queue_full_once=True)
    pub = publisher(client, key="none")
    pub.publish(native())
    assert client.sent[0]["key"] is None


def test_delivery_failures_surface_on_close() -> None:
    client = FakeProducer(fail_after=1)
    pub = publisher(client)
    pub.publish(native("a"))
    pub.publish(native("b"))
    with pytest.raises(DeliveryError, match=r"1 message.*Message size too large"):
        pub.close()


def test_defaults_are_idempotent_and_acknowledged_by_all_replicas() -> None:
    assert PRODUCER_DEFAULTS["enable.idempotence"] is True
    assert PRODUCER_DEFAULTS["acks"] == "all"
    assert PRODUCER_DEFAULTS["compression.type"] in {"lz4", "zstd"}


def run_file(
    tmp_path: Path, data: bytes, client: FakeProducer, rejects: str | None = None
) -> tuple[Any, str]:
    """Publishes ``data`` as a JSONL file; returns the report and what went to stderr."""
    path = tmp_path / "in.jsonl"
    path.write_bytes(data)
    stderr = io.StringIO()
    source = InputFile(str(path), LineValidator())
    with RejectLog(rejects, stream=stderr) as log:
        report = FilePublisher(publisher(client), log).run(
            source, ProgressDisplay("", None, enabled=False)
        )
    return report, stderr.getvalue()


def test_file_publish_sends_valid_lines_and_reports_the_rest(tmp_path: Path) -> None:
    data = line(native("a")) + b"oops\n" + line(batch("b")) + line(native("c", candidate={}))
    client = FakeProducer()
    report, stderr = run_file(tmp_path, data, client)
    assert (report.published, report.rejected, report.failed) == (2, 2, 0)
    assert [m["key"] for m in client.sent] == [b"a", b"b"]
    assert stderr.splitlines()[0].startswith("line 2: invalid JSON")
    assert stderr.splitlines()[1].startswith("line 4: candidate.id: Field required")
    assert "published 2 · rejected 2 · failed 0" in report.render()


def test_rejects_file_holds_every_rejection(tmp_path: Path) -> None:
    bad = STDERR_REJECT_LIMIT + 5
    data = line(native("a")) + b"{}\n" * bad
    rejects = tmp_path / "rejects.jsonl"
    report, stderr = run_file(tmp_path, data, FakeProducer(), str(rejects))
    records = [json.loads(text) for text in rejects.read_text().splitlines()]
    assert report.rejected == bad == len(records)
    assert records[0] == {"line": 2, "reason": records[0]["reason"], "text": "{}"}
    assert "id: Field required" in records[0]["reason"]
    assert stderr.count("\nline ") + 1 == STDERR_REJECT_LIMIT
    assert stderr.rstrip().endswith(f"... 5 more rejected line(s) in {rejects}")


def test_reading_stops_at_the_first_delivery_failure(tmp_path: Path) -> None:
    data = b"".join(line(native(f"r{i}")) for i in range(10))
    client = FakeProducer(fail_after=3)
    report, _ = run_file(tmp_path, data, client)
    assert len(client.sent) == 4
    assert (report.published, report.failed) == (3, 1)
    assert report.first_error == "Broker: Message size too large"


class FakeClock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_paces_to_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(4.0, burst=2.0, clock=clock)  # binary fractions: exact arithmetic
    assert bucket.try_take()
    assert bucket.try_take()
    assert not bucket.try_take()
    assert bucket.delay() == 0.25
    clock.now += 0.125
    assert not bucket.try_take()
    assert bucket.delay() == 0.125
    clock.now += 0.125
    assert bucket.try_take()
    clock.now += 60.0  # idle time does not bank more than the burst
    assert [bucket.try_take() for _ in range(3)] == [True, True, False]
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(0)
