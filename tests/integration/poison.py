"""The poison corpus and a harness that runs one worker over it (``test_poison*.py``).

``corpus`` lists every kind of bad input with the dead-letter reason it must get;
``poison_topics`` creates a test's topics. ``run_worker`` produces poison messages between good
requests, lets one worker process the lot and returns what it made of them (``Run``);
``by_kind`` sorts the dead letters by the poison kind their original trace header names.
"""

from __future__ import annotations

import json
import random
import string
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

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


def poison_topics(kafka_admin: AdminClient, dlq_config: dict[str, str]) -> Iterator[Topics]:
    """A test's topics and group; the topics are deleted afterwards, as far as the broker allows.

    The requests topic takes 12 MB messages; the dead-letter topic, of one partition, gets
    ``dlq_config``.
    """
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
