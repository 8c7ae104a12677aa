"""``evalstream-producer publish`` against a real broker: exactly the valid lines arrive."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

REPO_ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 60.0
GOOD_LINES = 1_000
BAD_LINES = 37

pytestmark = pytest.mark.integration


def producer_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Runs ``python -m producer`` as a separate process, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "producer", *args],
        cwd=REPO_ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=WAIT_S * 2,
        check=False,
    )


def consume_all(bootstrap: str, topic: str) -> list[Message]:
    """Reads every message of a topic, up to the end offsets taken before reading."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False}
    )
    try:
        metadata = consumer.list_topics(topic, timeout=WAIT_S)
        partitions = sorted(metadata.topics[topic].partitions)
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=WAIT_S)[1]
            for p in partitions
        }
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        messages: list[Message] = []
        while len(messages) < sum(ends.values()):
            for message in consumer.consume(500, timeout=1.0):
                assert message.error() is None, message.error()
                messages.append(message)
        return messages
    finally:
        consumer.close()


def request(number: int) -> dict[str, Any]:
    """A small valid request (the synthetic ones are tested elsewhere; keep the broker light)."""
    return {
        "id": f"req-{number:06d}",
        "candidate": {"id": f"cand-{number}", "text": f"Resume {number}: Kafka, Python."},
        "job": {"id": f"job-{number % 7}", "title": "Data Engineer", "text": "Stream things."},
        "metadata": {"batch": "it", "null_kept": None},
    }


BAD_KINDS: list[Callable[[int], tuple[str, str]]] = [
    lambda n: (
        json.dumps({**request(n), "candidate": {"id": "c"}}),
        "candidate.text: Field required",
    ),
    lambda n: ('{"id": "broken",', "invalid JSON"),
    lambda n: (
        json.dumps({**request(n), "priority": 1}),
        "priority: Extra inputs are not permitted",
    ),
    lambda n: (json.dumps({**request(n), "params": {"temperature": 9}}), "params.temperature"),
    lambda n: ("[1, 2, 3]", "expected a JSON object"),
]


def write_mixed_file(path: Path) -> dict[int, str]:
    """Writes GOOD_LINES valid and BAD_LINES invalid lines; returns bad line number -> reason."""
    rng = random.Random(7)
    total = GOOD_LINES + BAD_LINES
    bad_numbers = sorted(rng.sample(range(1, total + 1), BAD_LINES))
    expected: dict[int, str] = {}
    lines, good = [], 0
    for number in range(1, total + 1):
        if number in bad_numbers:
            text, reason = BAD_KINDS[len(expected) % len(BAD_KINDS)](number)
            expected[number] = reason
        else:
            good += 1
            text = json.dumps(request(good))
        lines.append(text)
    path.write_text("\n".join(lines) + "\n")
    return expected


def reported(stderr: str) -> dict[int, str]:
    """Line number -> reason of every ``line N: reason`` on stderr."""
    result = {}
    for text in stderr.splitlines():
        if text.startswith("line "):
            number, _, reason = text.removeprefix("line ").partition(": ")
            result[int(number)] = reason
    return result


@pytest.mark.timeout(300)
def test_publish_sends_exactly_the_valid_lines_and_reports_the_rest(
    kafka_bootstrap: str, topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    path = tmp_path / "requests.jsonl"
    expected = write_mixed_file(path)
    topic = topic_factory(3)

    run = producer_cli(
        "publish",
        str(path),
        "--bootstrap-servers",
        kafka_bootstrap,
        "--topic",
        topic,
        "--no-progress",
    )

    assert run.returncode == 1, run.stderr
    lines = reported(run.stderr)
    assert sorted(lines) == sorted(expected)
    for number, reason in expected.items():
        assert reason in lines[number], (number, lines[number])
    assert "published 1,000 · rejected 37 · failed 0" in run.stdout
    messages = consume_all(kafka_bootstrap, topic)
    keys = [message.key() for message in messages]
    assert len(messages) == GOOD_LINES
    assert len(set(keys)) == GOOD_LINES
    first = next(m for m in messages if m.key() == b"req-000001")
    assert json.loads(first.value() or b"") == request(1)  # bytes as given, nulls included


@pytest.mark.timeout(300)
def test_allow_rejects_exits_zero_and_rejects_file_holds_the_lines(
    kafka_bootstrap: str, topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    path = tmp_path / "requests.jsonl"
    expected = write_mixed_file(path)
    rejects = tmp_path / "rejects.jsonl"
    topic = topic_factory(1)

    run = producer_cli(
        "publish",
        str(path),
        "--bootstrap-servers",
        kafka_bootstrap,
        "--topic",
        topic,
        "--allow-rejects",
        "--rejects",
        str(rejects),
        "--no-progress",
    )

    assert run.returncode == 0, run.stderr
    records = [json.loads(text) for text in rejects.read_text().splitlines()]
    assert [record["line"] for record in records] == sorted(expected)
    assert "more rejected line(s) in" in run.stderr
    assert len(consume_all(kafka_bootstrap, topic)) == GOOD_LINES


@pytest.mark.timeout(180)
def test_stdin_unkeyed_with_headers_and_rate_limit(
    kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory(1)
    count, rate = 20, 40.0
    data = "".join(json.dumps(request(n)) + "\n" for n in range(1, count + 1))

    run = producer_cli(
        "publish",
        "-",
        "--bootstrap-servers",
        kafka_bootstrap,
        "--topic",
        topic,
        "--key",
        "none",
        "--header",
        "source=ats",
        "--header",
        "trace=abc=1",
        "--rate",
        str(rate),
        stdin=data,
    )

    assert run.returncode == 0, run.stderr
    seconds = float(run.stdout.split(" · ")[3].removesuffix(" s"))
    assert seconds >= (count - 2) / rate * 0.9  # the burst is 2 at this rate
    messages = consume_all(kafka_bootstrap, topic)
    assert len(messages) == count
    assert all(message.key() is None for message in messages)
    assert messages[0].headers() == [("source", b"ats"), ("trace", b"abc=1")]


@pytest.mark.timeout(120)
def test_undeliverable_messages_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(request(1)) + "\n")

    run = producer_cli(
        "publish",
        str(path),
        "--bootstrap-servers",
        "127.0.0.1:1",
        "--topic",
        "t",
        "-X",
        "message.timeout.ms=1000",
        "-X",
        "log_level=0",
    )

    assert run.returncode == 2, run.stderr
    assert "published 0 · rejected 0 · failed 1" in run.stdout
    assert "1 message(s) not delivered to t" in run.stderr


@pytest.mark.timeout(60)
def test_publishing_to_a_missing_topic_fails_at_once_naming_it(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    path = tmp_path / "requests.jsonl"
    path.write_text(json.dumps(request(0)) + "\n")
    started = time.monotonic()
    result = producer_cli(
        "publish", str(path), "--bootstrap-servers", kafka_bootstrap, "--topic", "no.such.topic"
    )
    assert time.monotonic() - started < 10  # not the 30-s delivery timeout
    assert result.returncode == 2, result.stderr
    assert "topic no.such.topic does not exist" in result.stderr
    assert "evalstream-producer topics create no.such.topic" in result.stderr  # how to create it


@pytest.mark.timeout(90)
def test_topics_create_then_describe_then_publish(tmp_path: Path, kafka_bootstrap: str) -> None:
    name = f"made.{random.randrange(1 << 30)}"
    created = producer_cli(
        "topics", "create", name, "--bootstrap-servers", kafka_bootstrap,
        "--partitions", "3", "--max-message-bytes", "2000000",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert f"created {name}" in created.stdout
    assert f"{name}: 3 partitions, replication factor 1, max.message.bytes 2,000,000" in (
        created.stdout
    )
    again = producer_cli("topics", "create", name, "--bootstrap-servers", kafka_bootstrap)
    assert f"exists  {name} (left as it is)" in again.stdout
    missing = producer_cli(
        "topics", "describe", "not.there", "--bootstrap-servers", kafka_bootstrap
    )
    assert "not.there: does not exist" in missing.stdout
    path = tmp_path / "requests.jsonl"
    path.write_text(json.dumps(request(0)) + "\n")
    published = producer_cli(
        "publish", str(path), "--bootstrap-servers", kafka_bootstrap, "--topic", name
    )
    assert published.returncode == 0, published.stderr
