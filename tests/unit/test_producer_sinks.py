"""Result sinks: SQLite upsert, JSONL lines, and the OpenAI batch output format."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from consumer.schemas import parse_result
from producer.errors import ResultStoreError
from producer.result_view import ResultView
from producer.sinks import (
    BatchOutputSink,
    JsonlSink,
    ResultStore,
    SinkFormat,
    SqliteSink,
    infer_format,
    open_sink,
)
from tests.unit.test_producer_results import batch_output, encode, native_result

pytestmark = pytest.mark.timeout(30)


def write(sink: ResultStore, value: bytes) -> bool:
    """Hands one message to a sink the way the collector does; returns whether it took it."""
    result = parse_result(value)
    if not sink.accepts(result):
        return False
    sink.write(result, value, ResultView.of(result))
    return True


def test_sqlite_upsert_keeps_one_row_per_request_and_refreshes_it(tmp_path: Path) -> None:
    path = str(tmp_path / "results.db")
    sink = SqliteSink(path)
    write(sink, encode(native_result("req-1", score=10)))
    write(sink, encode(native_result("req-2", status="error", reason="timeout")))
    write(sink, encode(batch_output("c-1", score=33)))
    sink.flush()
    write(sink, encode(native_result("req-1", score=90)))  # a second run over the same topic
    sink.close()

    with closing(sqlite3.connect(path)) as db:
        rows = db.execute(
            "SELECT request_id, kind, status, error_reason, score, model FROM results "
            "ORDER BY request_id"
        ).fetchall()
        stored = db.execute("SELECT json FROM results WHERE request_id = 'req-1'").fetchone()[0]
        indexes = {row[1] for row in db.execute("PRAGMA index_list('results')")}
    assert rows == [
        ("c-1", "openai-batch", "ok", None, 33, "sim-model"),
        ("req-1", "native", "ok", None, 90, "sim-model"),
        ("req-2", "native", "error", "timeout", None, "sim-model"),
    ]
    assert json.loads(stored)["evaluation"]["score"] == 90
    assert {"results_status", "results_score"} <= indexes


def test_sqlite_columns_carry_latency_and_completion_time(tmp_path: Path) -> None:
    path = str(tmp_path / "results.sqlite")
    sink = open_sink(path)
    write(sink, encode(native_result("req-1", end_to_end_s=3.25, variant="b")))
    sink.close()
    with closing(sqlite3.connect(path)) as db:
        row = db.execute(
            "SELECT end_to_end_s, queued_s, inference_s, variant, completed_at, attempts "
            "FROM results"
        ).fetchone()
    assert row == (3.25, 0.1, 1.2, "b", "2025-03-01T12:00:00+00:00", 1)


def test_jsonl_writes_each_message_as_one_line(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    sink = open_sink(str(path))
    write(sink, encode(native_result("req-1")))
    write(sink, json.dumps(batch_output("c-1"), indent=2).encode())  # multi-line JSON
    sink.close()
    lines = path.read_text().splitlines()
    assert [json.loads(line).get("id") for line in lines] == ["req-1", "batch_req_c-1"]


def test_openai_batch_output_has_exactly_the_four_fields(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    sink = open_sink(str(path), SinkFormat.OPENAI_BATCH)
    assert isinstance(sink, BatchOutputSink)
    assert write(sink, encode(batch_output("c-1", score=61)))
    assert not write(sink, encode(native_result("req-1")))  # native results have no place here
    failed = batch_output("c-2", error={"code": "engine_timeout", "message": "slow"})
    assert write(sink, encode(failed))
    sink.close()

    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [list(line) for line in lines] == [["id", "custom_id", "response", "error"]] * 2
    assert lines[0]["error"] is None
    assert set(lines[0]["response"]) == {"status_code", "request_id", "body"}
    content = lines[0]["response"]["body"]["choices"][0]["message"]["content"]
    assert json.loads(content)["score"] == 61
    assert lines[1] == {
        "id": "batch_req_c-2",
        "custom_id": "c-2",
        "response": None,
        "error": {"code": "engine_timeout", "message": "slow"},
    }


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a.db", SinkFormat.SQLITE), ("a.SQLITE3", SinkFormat.SQLITE), ("a.ndjson", SinkFormat.JSONL)],
)
def test_format_follows_the_suffix(name: str, expected: SinkFormat) -> None:
    assert infer_format(name) is expected


def test_unknown_suffix_asks_for_a_format(tmp_path: Path) -> None:
    with pytest.raises(ResultStoreError, match="--format"):
        open_sink(str(tmp_path / "results.out"))
    sink = open_sink(str(tmp_path / "r.out"), SinkFormat.JSONL)
    sink.close()
    assert isinstance(sink, JsonlSink)
