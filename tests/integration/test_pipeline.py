"""End to end through the real broker: every request gets a result or a dead letter."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from tests.integration.pipeline import (
    Pipeline,
    committed,
    end_offsets,
    produce,
    read_topic,
    request_json,
    result_ids,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

PARTITIONS = 4
MAX_REQUEST_BYTES = 65_536


def malformed(count_per_kind: int) -> list[tuple[bytes, bytes]]:
    """(key, value) pairs of five kinds of bad input, ``count_per_kind`` each."""
    good = json.loads(request_json(0))
    kinds: list[Callable[[int], bytes]] = [
        lambda i: b'{"id": "bad-json-%d", "candidate": ' % i,  # invalid JSON
        lambda i: json.dumps(
            {**good, "id": f"bad-type-{i}", "candidate": {"id": 7, "text": ["x"]}}
        ).encode(),
        lambda i: json.dumps({"id": f"bad-missing-{i}", "job": good["job"]}).encode(),
        lambda i: b"\xff\xfe\xfa not utf-8 %d" % i,
        lambda i: json.dumps(
            {**good, "id": f"bad-big-{i}", "rubric": "x" * (MAX_REQUEST_BYTES + 10)}
        ).encode(),
    ]
    return [
        (f"bad-{k}-{i}".encode(), kind(i))
        for k, kind in enumerate(kinds)
        for i in range(count_per_kind)
    ]


def test_valid_requests_get_results_and_malformed_ones_are_dead_lettered(
    engine_factory: Callable[..., str], pipeline_factory: Callable[..., Pipeline]
) -> None:
    pipeline = pipeline_factory(engine_factory("instant"), PARTITIONS)
    topics, bootstrap = pipeline.topics, pipeline.bootstrap
    bad = malformed(20)
    header = [("trace-id", b"\x00\x01binary")]

    def messages() -> Iterator[tuple[bytes | None, bytes | None, list[tuple[str, bytes]] | None]]:
        for i in range(2000):
            yield f"req-{i:06d}".encode(), request_json(i, job=i % 7), None
            if i % 20 == 0 and bad:
                key, value = bad.pop()
                yield key, value, header
        for key, value in bad:
            yield key, value, header

    sent_bad = dict(malformed(20))
    produce(bootstrap, topics.requests, messages())
    pipeline.worker(env={"EVALSTREAM_KAFKA__MAX_REQUEST_BYTES": str(MAX_REQUEST_BYTES)})

    results = read_topic(bootstrap, topics.results, lambda m: len(m) >= 2000, timeout=180)
    dead = read_topic(bootstrap, topics.dlq, lambda m: len(m) >= 100, timeout=60)
    ends = end_offsets(bootstrap, topics.requests, PARTITIONS)
    assert wait_until(
        lambda: committed(bootstrap, topics.group, topics.requests, PARTITIONS) == ends, 30
    )

    ids = result_ids(results)
    assert sorted(set(ids)) == [f"req-{i:06d}" for i in range(2000)]
    assert len(ids) == 2000  # no worker restart, so no duplicate either
    assert {key: value for key, value, _h in dead} == sent_bad  # byte for byte
    for key, _value, headers in dead:
        names = dict(headers)
        assert names["trace-id"] == b"\x00\x01binary", key  # original headers kept
        assert names["evalstream.error.reason"] in {
            b"invalid_json",
            b"invalid_schema",
            b"invalid_utf8",
            b"too_large",
        }
        assert names["evalstream.source.topic"] == topics.requests.encode()
        assert int(names["evalstream.source.offset"]) >= 0
    pipeline.stop()
    assert all(w.process is not None and w.process.returncode == 0 for w in pipeline.workers)
