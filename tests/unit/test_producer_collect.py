"""ResultCollector over a scripted reader: stop conditions, skipped shapes, the report."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Sequence
from pathlib import Path

import pytest
from confluent_kafka import Message

from consumer.schemas import BATCH_CHAT_URL, parse_result, result_key
from producer.collect import JOIN_S, ResultCollector
from producer.dead_letters import DeadLetter
from producer.progress import ProgressDisplay
from producer.result_reader import Outcome, ReceivedResult
from producer.sinks import SinkFormat, open_sink
from tests.unit.test_producer_publish import FakeClock
from tests.unit.test_producer_results import batch_output, encode, native_result

pytestmark = pytest.mark.timeout(30)


def received(value: bytes, offset: int) -> ReceivedResult:
    """A result as the reader returns it."""
    result = parse_result(value)
    return ReceivedResult(result_key(result), result, value, 0, offset, None)


class ScriptedReader:
    """Returns one scripted batch per poll, advancing a fake clock by the poll timeout."""

    def __init__(self, batches: Sequence[Sequence[Outcome]], clock: FakeClock) -> None:
        self.batches = deque(batches)
        self.clock = clock
        self.received = self.duplicates = self.invalid = 0
        self.assignments = 1
        self.commits = 0
        self.timeouts: list[float] = []

    def poll(self, timeout: float = 1.0) -> list[Outcome]:
        self.timeouts.append(timeout)
        if not self.batches:
            self.clock.now += timeout
            return []
        batch = self.batches.popleft()
        self.received += len(batch) + 1  # one duplicate per batch, dropped by the reader
        self.duplicates += 1
        return list(batch)

    def commit(self) -> None:
        self.commits += 1


NO_PROGRESS = ProgressDisplay("", None, enabled=False)


def test_stops_after_the_expected_number_of_results(tmp_path: Path) -> None:
    clock = FakeClock()
    batches = [[received(encode(native_result(f"r{i}")), i)] for i in range(5)]
    reader = ScriptedReader(batches, clock)
    sink = open_sink(str(tmp_path / "out.jsonl"))
    report = ResultCollector(reader, sink, expect=3, clock=clock).run(NO_PROGRESS)
    sink.close()
    assert report.stats.distinct == 3
    assert report.complete
    assert report.stopped_by == "after 3 outcomes"
    assert report.stats.duplicates == 3
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 3
    assert reader.commits >= 1  # flushed, then committed, at the end


def test_stops_when_idle_and_reports_incomplete(tmp_path: Path) -> None:
    clock = FakeClock()
    reader = ScriptedReader([[received(encode(native_result("r1")), 0)]], clock)
    sink = open_sink(str(tmp_path / "out.db"))
    collector = ResultCollector(reader, sink, expect=5, until_idle=2.0, clock=clock)
    report = collector.run(NO_PROGRESS)
    sink.close()
    assert (report.stats.distinct, report.complete) == (1, False)
    assert report.stopped_by == "idle for 2 s"
    assert max(reader.timeouts) <= 1.0  # polls wake up in time to notice the deadline
    summary = report.to_dict()
    assert (summary["expected"], summary["complete"], summary["duplicates"]) == (5, False, 1)
    assert summary["output"].endswith("out.db (sqlite, table results)")
    json.dumps(summary)
    assert "stopped      idle for 2 s of 5 expected" in report.render()


def test_batch_sink_skips_native_results_but_counts_them(tmp_path: Path) -> None:
    clock = FakeClock()
    batch = [received(encode(batch_output("b1")), 0), received(encode(native_result("r1")), 1)]
    sink = open_sink(str(tmp_path / "out.jsonl"), SinkFormat.OPENAI_BATCH)
    report = ResultCollector(ScriptedReader([batch], clock), sink, until_idle=1.0, clock=clock).run(
        NO_PROGRESS
    )
    sink.close()
    assert (report.stats.distinct, report.stats.skipped) == (2, 1)
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert [json.loads(text)["custom_id"] for text in lines] == ["b1"]


def dead_letter(request_id: str, offset: int, reason: str = "unknown_model") -> DeadLetter:
    """A dead letter as the worker writes it: the request's bytes, its key, our headers."""
    value = json.dumps(
        {"custom_id": request_id, "method": "POST", "url": BATCH_CHAT_URL, "body": {}}
    )
    message = Message(
        topic="dlq",
        partition=0,
        offset=offset,
        key=request_id.encode(),
        value=value.encode(),
        headers=[("trace", b"t"), ("evalstream.error.reason", reason.encode())],
    )
    return DeadLetter.of(message, 0, offset)


def test_dead_letters_name_their_request_from_the_value_key_or_source() -> None:
    assert dead_letter("b7", 4) == DeadLetter("b7", "unknown_model", 0, 4)
    keyed = Message(topic="dlq", key=b"r9", value=b"not json", headers=[])
    assert DeadLetter.of(keyed, 0, 1) == DeadLetter("r9", "unknown", 0, 1)
    parts = (("topic", b"rq"), ("partition", b"2"), ("offset", b"40"))
    source: list[tuple[str, str | bytes | None]] = [(f"evalstream.source.{k}", v) for k, v in parts]
    omitted = Message(topic="dlq", key=None, value=None, headers=source)
    assert DeadLetter.of(omitted, 0, 2).request_id == "dead-letter:rq/2/40"


def test_dead_letters_count_toward_expect_and_are_not_written(tmp_path: Path) -> None:
    clock = FakeClock()
    batches: list[list[Outcome]] = [
        [received(encode(batch_output("b1")), 0), dead_letter("b2", 0)],
        [dead_letter("b3", 1, "invalid_request")],
    ]
    sink = open_sink(str(tmp_path / "out.jsonl"), SinkFormat.OPENAI_BATCH)
    report = ResultCollector(ScriptedReader(batches, clock), sink, expect=3, clock=clock).run(
        NO_PROGRESS
    )
    sink.close()
    assert (report.complete, report.stopped_by, report.written) == (True, "after 3 outcomes", 1)
    assert report.to_dict()["dead_letter_reasons"] == {"unknown_model": 1, "invalid_request": 1}
    assert "dead letters 2 (unknown_model 1, invalid_request 1); not in the results file" in (
        report.render()
    )
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 1


def test_a_run_that_stored_nothing_says_why(tmp_path: Path) -> None:
    clock = FakeClock()
    sink = open_sink(str(tmp_path / "out.jsonl"), SinkFormat.OPENAI_BATCH)
    batches: list[list[Outcome]] = [[dead_letter("b1", 0), dead_letter("b2", 1)]]
    report = ResultCollector(ScriptedReader(batches, clock), sink, expect=2, clock=clock).run(
        NO_PROGRESS
    )
    sink.close()
    assert report.written == 0
    assert report.nothing_written("t on k", "out.jsonl") == (
        "all 2 requests were dead-lettered (unknown_model 2); nothing written to out.jsonl"
    )
    empty = open_sink(str(tmp_path / "empty.jsonl"))
    idle = ResultCollector(ScriptedReader([], clock), empty, until_idle=3, clock=clock)
    assert idle.run(NO_PROGRESS).nothing_written("t on k", "out.jsonl") == (
        "no results arrived from t on k (stopped idle for 3 s); nothing written"
    )
    empty.close()


def test_the_idle_clock_waits_for_the_group_to_join_but_not_for_ever(tmp_path: Path) -> None:
    clock = FakeClock()
    reader = ScriptedReader([], clock)
    reader.assignments = 0  # a fresh cluster may take seconds to assign the first group
    sink = open_sink(str(tmp_path / "out.jsonl"))
    report = ResultCollector(reader, sink, until_idle=2.0, clock=clock).run(NO_PROGRESS)
    sink.close()
    assert report.stopped_by == f"with no partition assigned within {JOIN_S:g} s"
    assert report.elapsed_s == pytest.approx(JOIN_S, abs=1.0)
