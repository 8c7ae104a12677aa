"""Poison input: each kind of bad message is dead-lettered byte for byte, and nothing stalls.

Every poison message is followed on its partition by a good request, so a worker that
crashed, dropped the rest of a batch or blocked the partition on it would leave a good
request without a result, or the group's committed offset short of the partition's end.
"""

from __future__ import annotations

import json
import random
import string
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Message, Producer

# NewTopic's documented home; the package imports it from cimpl without re-exporting it.
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from tests.integration.pipeline import (
    SIM_MODEL,
    Pipeline,
    Topics,
    committed,
    end_offsets,
    read_topic,
    request_json,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

PARTITIONS = 2
# Large enough for the 10 MB poison message on the requests and the dead-letter topics.
MAX_MESSAGE_BYTES = 12_000_000
BIG = {"max.message.bytes": str(MAX_MESSAGE_BYTES)}
TEN_MB = 10 * 1024 * 1024
# The simulator's max_model_len (vLLM's default for the profile), four characters a token.
MAX_MODEL_LEN = 32_768
TRACE = "trace-id"

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True)
class Poison:
    """One kind of bad input and the dead-letter reason it must get."""

    kind: str
    key: bytes | None
    value: bytes | None
    reason: str


def _request(kind: str, **fields: object) -> dict[str, object]:
    good: dict[str, object] = json.loads(request_json(0))
    return {**good, "id": f"poison-{kind}", **fields}


def _encode(data: object) -> bytes:
    return json.dumps(data).encode()


def _incompressible_text(size: int) -> str:
    """Seeded random letters: the 10 MB message stays 10 MB on the wire."""
    rng = random.Random(7)
    return "".join(rng.choices(string.ascii_letters + " ", k=size))


def corpus() -> list[Poison]:
    """Every kind of poison message, with the reason its dead letter must carry."""
    good = _request("x")
    kinds: list[tuple[str, bytes | None, str]] = [
        ("invalid-json", b'{"id": "poison-invalid-json", "candidate": ', "invalid_json"),
        (
            "wrong-types",
            _encode(_request("wrong-types", candidate={"id": 7, "text": ["x"]})),
            "invalid_schema",
        ),
        ("missing-fields", _encode({"id": "poison-missing", "job": good["job"]}), "invalid_schema"),
        ("extra-fields", _encode(_request("extra-fields", priority="high")), "invalid_schema"),
        ("not-utf8", b'{"id": "poison-\xff\xfe\xfa"}', "invalid_utf8"),
        ("empty-value", b"", "empty_value"),
        ("tombstone", None, "empty_value"),
        ("not-an-object", b'["poison", "array"]', "invalid_json"),
        ("utf8-bom", b"\xef\xbb\xbf" + _encode(_request("utf8-bom")), "invalid_json"),
        ("deep-nesting", b"[" * 100_000 + b"]" * 100_000, "invalid_json"),
        (
            "nan-temperature",
            b'{"id": "poison-nan", "candidate": {"id": "c", "text": "t"}, '
            b'"job": {"id": "j", "title": "t", "text": "t"}, "params": {"temperature": NaN}}',
            "invalid_schema",
        ),
        ("id-too-long", _encode(_request("x", id="i" * 300)), "invalid_schema"),
        (
            "ten-megabytes",
            _encode(
                _request(
                    "ten-megabytes", candidate={"id": "c", "text": _incompressible_text(TEN_MB)}
                )
            ),
            "too_large",
        ),
        (
            # Under the byte limit, over the model's context: the engine answers 400.
            "over-context",
            _encode(
                _request("over-context", candidate={"id": "c", "text": "word " * MAX_MODEL_LEN})
            ),
            "context_length",
        ),
        (
            "unknown-model",
            _encode(_request("unknown-model", model="no-such-model")),
            "unknown_model",
        ),
        (
            "batch-unsupported-url",
            _encode(
                {
                    "custom_id": "poison-batch-url",
                    "method": "POST",
                    "url": "/v1/embeddings",
                    "body": {"model": SIM_MODEL, "input": "text"},
                }
            ),
            "invalid_schema",
        ),
    ]
    poison = [Poison(kind, f"poison-{kind}".encode(), value, r) for kind, value, r in kinds]
    # A null key, on an otherwise bad message: the dead letter keeps the null key.
    poison.append(Poison("null-key", None, b'{"id": ', "invalid_json"))
    return poison


@pytest.fixture
def big_topics(kafka_admin: AdminClient) -> Iterator[Topics]:
    """Requests and dead-letter topics that take 12 MB messages, and a results topic."""
    yield from _topics(kafka_admin, BIG)


@pytest.fixture
def small_dlq_topics(kafka_admin: AdminClient) -> Iterator[Topics]:
    """A requests topic that takes 12 MB messages, a dead-letter topic at the broker's
    default limit (~1 MB)."""
    yield from _topics(kafka_admin, {})


def _topics(kafka_admin: AdminClient, dlq_config: dict[str, str]) -> Iterator[Topics]:
    suffix = uuid.uuid4().hex[:12]
    topics = Topics(f"requests-{suffix}", f"results-{suffix}", f"dlq-{suffix}", f"g-{suffix}")
    new = [
        NewTopic(topics.requests, PARTITIONS, replication_factor=1, config=BIG),
        NewTopic(topics.results, PARTITIONS, replication_factor=1),
        NewTopic(topics.dlq, 1, replication_factor=1, config=dlq_config),
    ]
    for future in kafka_admin.create_topics(new, request_timeout=30).values():
        future.result(timeout=30)
    yield topics
    names = [topics.requests, topics.results, topics.dlq]
    for future in kafka_admin.delete_topics(names, request_timeout=30).values():
        future.exception(timeout=30)  # best effort


Coordinates = tuple[int, int]


def produce_interleaved(
    bootstrap: str, topic: str, poison: list[Poison], goods_per_poison: int
) -> tuple[dict[str, Coordinates], list[str]]:
    """Produces each poison message between good requests on one partition.

    Returns:
        The (partition, offset) of each poison kind, and the ids of the good requests.
    """
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "message.max.bytes": MAX_MESSAGE_BYTES,
        }
    )
    where: dict[str, Coordinates] = {}
    errors: list[KafkaError] = []
    good: list[str] = []

    def delivered(kind: str) -> Callable[[KafkaError | None, Message], None]:
        def report(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                errors.append(error)
            else:
                where[kind] = (message.partition() or 0, message.offset() or 0)

        return report

    def send_good(partition: int) -> None:
        i = len(good)
        good.append(f"req-{i:06d}")
        producer.produce(topic, request_json(i, job=i % 3), good[-1].encode(), partition)

    for index, item in enumerate(poison):
        partition = index % PARTITIONS
        for _ in range(goods_per_poison):
            send_good(partition)
        producer.produce(
            topic,
            item.value,
            item.key,
            partition,
            on_delivery=delivered(item.kind),
            headers=[(TRACE, b"\x00\xff" + item.kind.encode())],
        )
        send_good(partition)  # right behind it: processed only if the poison let it through
        producer.poll(0)
    assert producer.flush(60) == 0
    assert errors == []
    return where, good


Record = tuple[bytes | None, bytes | None, Headers]


@dataclass(frozen=True)
class Run:
    """What one worker made of an interleaved corpus.

    Attributes:
        where: the (partition, offset) of each poison kind.
        good: the ids of the good requests.
        results: the results topic.
        dead: the dead-letter topic.
        drained: the group's committed offsets reached the end of every partition.
        alive: the worker was still running at the end.
        exit_code: its exit code after SIGTERM.
    """

    where: dict[str, Coordinates]
    good: list[str]
    results: list[Record]
    dead: list[Record]
    drained: bool
    alive: bool
    exit_code: int | None


def run_worker(
    engine_url: str,
    bootstrap: str,
    topics: Topics,
    poison: list[Poison],
    tmp_path: Path,
    patience_s: float = 30.0,
    client: dict[str, str] | None = None,
) -> Run:
    """Produces ``poison`` between good requests and lets one worker process all of it.

    ``patience_s`` bounds the wait for the dead letters and for the commits to reach the end.
    """
    where, good = produce_interleaved(bootstrap, topics.requests, poison, 20)
    pipeline = Pipeline(bootstrap, topics, engine_url, tmp_path)
    try:
        # The worker's producer must be allowed to write the 10 MB dead letter.
        client = {"message.max.bytes": str(MAX_MESSAGE_BYTES)} if client is None else client
        worker = pipeline.worker(env={"EVALSTREAM_KAFKA__CLIENT": json.dumps(client)})
        results = read_topic(bootstrap, topics.results, lambda m: len(m) >= len(good), 120)
        dead = read_topic(bootstrap, topics.dlq, lambda m: len(m) >= len(poison), patience_s)
        ends = end_offsets(bootstrap, topics.requests, PARTITIONS)
        # A partition that never held a message has no committed offset (-1001) to reach.
        drained = wait_until(
            lambda: (
                {
                    p: max(0, o)
                    for p, o in committed(
                        bootstrap, topics.group, topics.requests, PARTITIONS
                    ).items()
                }
                == ends
            ),
            patience_s,
        )
        alive = worker.alive()
    finally:
        pipeline.stop()
    process = pipeline.workers[0].process
    exit_code = None if process is None else process.returncode
    return Run(where, good, results, dead, drained, alive, exit_code)


def by_kind(records: list[Record]) -> dict[str, Record]:
    """Dead letters by the poison kind their original trace header names."""
    return {dict(h)[TRACE][2:].decode(): (key, value, h) for key, value, h in records}


def test_poison_input_is_dead_lettered_byte_for_byte_and_blocks_nothing(
    engine_factory: Callable[..., str], kafka_bootstrap: str, big_topics: Topics, tmp_path: Path
) -> None:
    poison = [p for p in corpus() if p.kind != "tombstone"]
    assert len(poison) >= 12
    run = run_worker(engine_factory("instant"), kafka_bootstrap, big_topics, poison, tmp_path)
    assert run.alive, "a poison message stopped the worker"
    assert run.exit_code == 0
    assert run.drained, "a partition is blocked"
    result_ids = sorted(json.loads(value or b"{}")["id"] for _k, value, _h in run.results)
    assert result_ids == sorted(run.good), "a good request behind a poison message got no result"
    dead = by_kind(run.dead)
    assert len(run.dead) == len(poison), f"dead letters of {sorted(dead)}"
    problems: dict[str, str] = {}
    for item in poison:
        if item.kind not in dead:
            problems[item.kind] = "no dead letter"
            continue
        key, value, headers = dead[item.kind]
        names = dict(headers)
        partition, offset = run.where[item.kind]
        expected = {
            TRACE: b"\x00\xff" + item.kind.encode(),
            "evalstream.error.reason": item.reason.encode(),
            "evalstream.source.topic": big_topics.requests.encode(),
            "evalstream.source.partition": str(partition).encode(),
            "evalstream.source.offset": str(offset).encode(),
        }
        wrong = {k: names.get(k) for k, v in expected.items() if names.get(k) != v}
        if key != item.key or value != item.value or wrong:
            size = None if value is None else len(value)
            problems[item.kind] = f"key {key!r}, value of {size} bytes, headers {wrong}"
        elif headers[0] != (TRACE, expected[TRACE]):
            problems[item.kind] = "the original headers do not come first"
    assert problems == {}


def test_a_tombstone_is_dead_lettered_as_a_tombstone(
    engine_factory: Callable[..., str], kafka_bootstrap: str, big_topics: Topics, tmp_path: Path
) -> None:
    poison = [p for p in corpus() if p.kind == "tombstone"]
    run = run_worker(engine_factory("instant"), kafka_bootstrap, big_topics, poison, tmp_path)
    assert run.drained
    [(key, value, headers)] = run.dead
    assert dict(headers)["evalstream.error.reason"] == b"empty_value"
    assert (key, value) == (b"poison-tombstone", None)


@pytest.mark.parametrize(
    "client",
    [{}, {"message.max.bytes": str(MAX_MESSAGE_BYTES)}],
    ids=["refused-by-the-producer", "refused-by-the-broker"],
)
def test_a_dead_letter_over_the_topic_limit_goes_without_its_value(
    engine_factory: Callable[..., str],
    kafka_bootstrap: str,
    small_dlq_topics: Topics,
    tmp_path: Path,
    client: dict[str, str],
) -> None:
    poison = [p for p in corpus() if p.kind == "ten-megabytes"]
    url = engine_factory("instant")
    run = run_worker(url, kafka_bootstrap, small_dlq_topics, poison, tmp_path, client=client)
    assert run.drained, "the oversized dead letter blocked its partition"
    assert len(run.results) == len(run.good)
    [(key, value, headers)] = run.dead
    names = dict(headers)
    partition, offset = run.where["ten-megabytes"]
    assert (key, value) == (poison[0].key, None)
    assert names["evalstream.error.reason"] == b"too_large"
    assert names["evalstream.value.omitted"] == str(len(poison[0].value or b"")).encode()
    assert names["evalstream.source.offset"] == str(offset).encode()
    assert names["evalstream.source.partition"] == str(partition).encode()


def _batch_line(kind: str, content: str, extra: str = "") -> bytes:
    # Written by hand: json.dumps would refuse NaN with allow_nan=False and escape the surrogate.
    return (
        f'{{"custom_id": "poison-{kind}", "method": "POST", "url": "/v1/chat/completions", '
        f'"body": {{"model": "{SIM_MODEL}", "messages": [{{"role": "user", "content": '
        f'"{content}"}}]{extra}}}}}'
    ).encode()


def test_a_batch_line_the_engine_client_cannot_encode_still_gets_an_outcome(
    engine_factory: Callable[..., str], kafka_bootstrap: str, big_topics: Topics, tmp_path: Path
) -> None:
    """Valid JSON for Python, but not for the HTTP client: NaN, a lone UTF-16 surrogate."""
    poison = [
        Poison(
            "batch-nan", b"poison-batch-nan", _batch_line("nan", "hi", ', "temperature": NaN'), ""
        ),
        Poison("batch-surrogate", b"poison-batch-surrogate", _batch_line("sur", "\\ud800"), ""),
    ]
    url = engine_factory("instant")
    run = run_worker(url, kafka_bootstrap, big_topics, poison, tmp_path, patience_s=10)
    answered = {json.loads(v or b"{}").get("custom_id") for _k, v, _h in run.results}
    dead = {key for key, _v, _h in run.dead}
    missing = [
        p.kind for p in poison if p.key not in dead and f"poison-{p.kind[6:]}" not in answered
    ]
    assert missing == [], "neither a result nor a dead letter"
    assert run.drained, "the partition's committed offset is stuck at the poison message"
