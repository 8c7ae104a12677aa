"""ResultCollector over a scripted reader: stop conditions, skipped shapes, the report."""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path

import pytest

from consumer.schemas import parse_result, result_key
from producer.collect import ReceivedResult, ResultCollector
from producer.progress import ProgressDisplay
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

    def __init__(self, batches: list[list[ReceivedResult]], clock: FakeClock) -> None:
        self.batches = deque(batches)
        self.clock = clock
        self.received = self.duplicates = self.invalid = 0
        self.assignments = 1
        self.commits = 0
        self.timeouts: list[float] = []

    def poll(self, timeout: float = 1.0) -> list[ReceivedResult]:
        self.timeouts.append(timeout)
        if not self.batches:
            self.clock.now += timeout
            return []
        batch = self.batches.popleft()
        self.received += len(batch) + 1  # one duplicate per batch, dropped by the reader
        self.duplicates += 1
        return batch

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
    assert report.stopped_by == "after 3 results"
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
