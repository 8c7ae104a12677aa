"""``evalstream-producer collect`` against a real broker: duplicates dropped, both result shapes."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Message, Producer

from consumer.schemas import BATCH_CHAT_URL
from producer import GroupStatus, ResultReader
from tests.integration.test_producer_publish_cli import consume_all, producer_cli
from tests.unit.test_producer_results import batch_output, encode, native_result

WAIT_S = 60.0
NATIVE = 40
BATCH = 6
DUPLICATES = 9

pytestmark = pytest.mark.integration


def produce(bootstrap: str, topic: str, messages: Sequence[tuple[str | None, bytes]]) -> None:
    """Produces keyed messages in order; fails unless the broker acknowledged every one."""
    errors: list[KafkaError] = []

    def on_delivery(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            errors.append(error)

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for key, value in messages:
        producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
    assert producer.flush(WAIT_S) == 0
    assert errors == []


def results_with_duplicates(bootstrap: str, topic: str) -> None:
    """NATIVE native results and BATCH batch lines, DUPLICATES redelivered (different score),
    and one message that is not a result."""
    messages: list[tuple[str | None, bytes]] = []
    for number in range(NATIVE):
        messages.append((f"r{number}", encode(native_result(f"r{number}", score=number))))
    for number in range(BATCH):
        messages.append((f"b{number}", encode(batch_output(f"b{number}", score=50 + number))))
    for number in range(DUPLICATES):  # the same request evaluated again after a redelivery
        messages.append((f"r{number}", encode(native_result(f"r{number}", score=99))))
    messages.append((None, b'{"not": "a result"}'))
    produce(bootstrap, topic, messages)


@pytest.mark.timeout(300)
def test_collect_deduplicates_into_sqlite_and_jsonl(
    kafka_bootstrap: str, topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    topic = topic_factory(3)
    results_with_duplicates(kafka_bootstrap, topic)
    db, summary = tmp_path / "results.db", tmp_path / "summary.json"
    common = ["--bootstrap-servers", kafka_bootstrap, "--topic", topic, "--no-progress", "--no-dlq"]

    run = producer_cli(
        "collect", *common, "--out", str(db), "--until-idle", "2", "--json-summary", str(summary)
    )

    assert run.returncode == 0, run.stderr
    with closing(sqlite3.connect(db)) as connection:
        rows = dict(connection.execute("SELECT request_id, score FROM results").fetchall())
    assert len(rows) == NATIVE + BATCH
    assert rows["r0"] == 0  # the first result read for an id wins
    stats = json.loads(summary.read_text())
    assert (stats["distinct"], stats["duplicates"], stats["invalid"]) == (
        NATIVE + BATCH,
        DUPLICATES,
        1,
    )
    assert stats["status"] == {"ok": NATIVE + BATCH}
    assert stats["latency_s"]["count"] == NATIVE
    assert "9 duplicates dropped · 1 invalid" in run.stdout
    assert "not a result" in run.stderr

    jsonl = tmp_path / "results.jsonl"
    run = producer_cli("collect", *common, "--out", str(jsonl), "--expect", str(NATIVE + BATCH))
    assert run.returncode == 0, run.stderr
    lines = [json.loads(text) for text in jsonl.read_text().splitlines()]
    ids = [line.get("custom_id", line.get("id")) for line in lines]
    assert len(ids) == len(set(ids)) == NATIVE + BATCH
    assert next(line for line in lines if line.get("id") == "r3")["evaluation"]["score"] == 3


@pytest.mark.timeout(300)
def test_collect_reports_missing_results(
    kafka_bootstrap: str, topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    topic = topic_factory(1)
    produce(kafka_bootstrap, topic, [("r1", encode(native_result("r1")))])
    run = producer_cli(
        "collect",
        "--bootstrap-servers",
        kafka_bootstrap,
        "--topic",
        topic,
        "--out",
        str(tmp_path / "r.db"),
        "--expect",
        "2",
        "--until-idle",
        "2",
        "--no-dlq",
    )
    assert run.returncode == 1
    assert run.stderr == (
        "error: expected 2 results, collected 1 (1 results, 0 dead letters); stopped idle for 2 s\n"
    )


@pytest.mark.timeout(300)
def test_openai_batch_round_trip(
    kafka_bootstrap: str, topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    requests_topic, results_topic = topic_factory(2), topic_factory(2)
    batch_in = tmp_path / "batch_in.jsonl"
    synth = producer_cli(
        "synth",
        "--count",
        "12",
        "--seed",
        "5",
        "--jobs",
        "3",
        "--batch-format",
        "-o",
        str(batch_in),
    )
    assert synth.returncode == 0, synth.stderr
    run = producer_cli(
        "publish",
        str(batch_in),
        "--format",
        "openai-batch",
        "--bootstrap-servers",
        kafka_bootstrap,
        "--topic",
        requests_topic,
        "--no-progress",
    )
    assert run.returncode == 0, run.stderr

    # Stand in for the worker: answer each batch line, one of them twice.
    answers = []
    for message in consume_all(kafka_bootstrap, requests_topic):
        line = json.loads(message.value() or b"")
        answers.append((line["custom_id"], encode(batch_output(line["custom_id"], score=70))))
    produce(kafka_bootstrap, results_topic, [*answers, answers[0]])

    out = tmp_path / "batch_out.jsonl"
    run = producer_cli(
        "collect",
        "--bootstrap-servers",
        kafka_bootstrap,
        "--topic",
        results_topic,
        "--out",
        str(out),
        "--format",
        "openai-batch",
        "--expect",
        "12",
        "--no-progress",
        "--no-dlq",
    )
    assert run.returncode == 0, run.stderr
    sent = [json.loads(text)["custom_id"] for text in batch_in.read_text().splitlines()]
    lines = [json.loads(text) for text in out.read_text().splitlines()]
    assert sorted(line["custom_id"] for line in lines) == sorted(sent)
    assert all(list(line) == ["id", "custom_id", "response", "error"] for line in lines)


@pytest.mark.timeout(300)
def test_result_reader_yields_each_request_once(
    kafka_bootstrap: str,
    topic_factory: Callable[..., str],
    group_factory: Callable[..., str],
) -> None:
    topic, group = topic_factory(2), group_factory()
    results_with_duplicates(kafka_bootstrap, topic)
    seen: list[str] = []
    with ResultReader(kafka_bootstrap, topic, group_id=group) as reader:
        for received in reader:
            seen.append(received.request_id)
            if len(seen) == NATIVE + BATCH:
                break
        while reader.received < NATIVE + BATCH + DUPLICATES + 1:
            assert reader.poll(timeout=1.0) == []
        assert (reader.duplicates, reader.invalid) == (DUPLICATES, 1)
    assert len(set(seen)) == NATIVE + BATCH
    with GroupStatus(kafka_bootstrap, group, topic) as status:  # closing committed everything
        assert status.sample(0.0).backlog == 0


@pytest.mark.timeout(300)
def test_collect_to_parquet_has_typed_columns_read_back_by_pyarrow(
    kafka_bootstrap: str, topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    pa = pytest.importorskip("pyarrow")
    topic = topic_factory(3)
    results_with_duplicates(kafka_bootstrap, topic)
    out = tmp_path / "results.parquet"
    common = ["--bootstrap-servers", kafka_bootstrap, "--topic", topic, "--no-progress", "--no-dlq"]

    run = producer_cli("collect", *common, "--out", str(out), "--expect", str(NATIVE + BATCH))

    assert run.returncode == 0, run.stderr
    table = pq.read_table(out)
    assert table.num_rows == NATIVE + BATCH
    types = dict(zip(table.schema.names, table.schema.types, strict=True))
    assert types["score"] == pa.int64()
    assert types["end_to_end_s"] == pa.float64()
    assert types["completed_at"] == pa.timestamp("us", tz="UTC")
    assert types["status"] == pa.string()
    rows = {row["request_id"]: row for row in table.to_pylist()}
    assert rows["r3"]["score"] == 3  # the first result read for an id wins
    assert rows["r3"]["kind"] == "native"
    assert rows["b1"]["kind"] == "openai-batch"
    assert rows["r3"]["completed_at"] is not None


def dead_letters(bootstrap: str, topic: str, ids: Sequence[str], reason: str) -> None:
    """Dead letters as the worker writes them: the batch line's key and bytes, its headers."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for number, request_id in enumerate(ids):
        line = {"custom_id": request_id, "method": "POST", "url": BATCH_CHAT_URL, "body": {}}
        headers: list[tuple[str, str | bytes | None]] = [
            ("evalstream.error.reason", reason.encode()),
            ("evalstream.source.topic", b"requests"),
            ("evalstream.source.partition", b"0"),
            ("evalstream.source.offset", str(number).encode()),
        ]
        producer.produce(topic, json.dumps(line).encode(), request_id, headers=list(headers))
    assert producer.flush(WAIT_S) == 0


@pytest.mark.timeout(300)
def test_dead_letters_count_toward_expect(
    kafka_bootstrap: str, topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    results, dlq = topic_factory(2), topic_factory(1)
    produce(kafka_bootstrap, results, [(f"b{n}", encode(batch_output(f"b{n}"))) for n in range(3)])
    dead_letters(kafka_bootstrap, dlq, ["b3", "b4"], "unknown_model")
    summary = tmp_path / "summary.json"
    run = producer_cli(
        "collect", "--bootstrap-servers", kafka_bootstrap, "--topic", results,
        "--dlq-topic", dlq, "--out", str(tmp_path / "r.jsonl"), "--expect", "5",
        "--json-summary", str(summary), "--no-progress",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    assert "dead letters 2 (unknown_model 2); not in the results file" in run.stdout
    stats = json.loads(summary.read_text())
    assert (stats["distinct"], stats["dead_letters"], stats["stopped_by"]) == (
        3,
        2,
        "after 5 outcomes",
    )
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 3


@pytest.mark.timeout(300)
def test_collecting_a_batch_run_that_was_all_dead_lettered_fails_and_writes_nothing(
    kafka_bootstrap: str, topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    results, dlq = topic_factory(1), topic_factory(1)
    dead_letters(kafka_bootstrap, dlq, ["b0", "b1"], "unknown_model")
    out = tmp_path / "batch_out.jsonl"
    run = producer_cli(
        "collect", "--bootstrap-servers", kafka_bootstrap, "--topic", results,
        "--dlq-topic", dlq, "--out", str(out), "--format", "openai-batch", "--expect", "2",
        "--no-progress",
    )  # fmt: skip
    assert run.returncode == 1
    assert run.stderr == (
        f"error: all 2 requests were dead-lettered (unknown_model 2); nothing written to {out}\n"
    )
    assert not out.exists()


@pytest.mark.timeout(120)
def test_collect_from_a_misspelled_topic_fails_at_once_naming_it(
    kafka_bootstrap: str, topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    topic = topic_factory(1)
    wrong = topic[:-1] + ("x" if topic[-1] != "x" else "y")
    out = tmp_path / "results.sqlite"
    started = time.monotonic()
    run = producer_cli(
        "collect", "--bootstrap-servers", kafka_bootstrap, "--topic", wrong, "--out", str(out)
    )
    assert time.monotonic() - started < 30  # not the 30-s idle limit after an empty wait
    assert run.returncode == 1
    assert run.stderr == (
        f"error: topic {wrong} does not exist on {kafka_bootstrap}; did you mean --topic {topic}?\n"
    )
    assert not out.exists()
    named_dlq = producer_cli(
        "collect", "--bootstrap-servers", kafka_bootstrap, "--topic", topic,
        "--dlq-topic", wrong, "--out", str(out),
    )  # fmt: skip
    assert named_dlq.returncode == 1
    assert named_dlq.stderr == (
        f"error: topic {wrong} does not exist on {kafka_bootstrap}; "
        f"did you mean --dlq-topic {topic}?\n"
    )
    assert not out.exists()


@pytest.mark.timeout(120)
def test_collect_that_received_nothing_fails_and_leaves_no_file(
    kafka_bootstrap: str, topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    topic = topic_factory(1)
    out = tmp_path / "results.jsonl"
    run = producer_cli(
        "collect", "--bootstrap-servers", kafka_bootstrap, "--topic", topic, "--no-dlq",
        "--out", str(out), "--until-idle", "1", "--no-progress",
    )  # fmt: skip
    assert run.returncode == 1
    assert run.stderr == (
        f"error: no results arrived from {topic} on {kafka_bootstrap} (stopped idle for 1 s); "
        "nothing written\n"
    )
    assert not out.exists()
