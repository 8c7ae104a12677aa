"""A request's deadline: the field, the header, and which one holds."""

from __future__ import annotations

import json

import pytest

from consumer.deadlines import HEADER, deadline_of
from consumer.errors import DecodeError
from consumer.jobs import Job, decode_job
from consumer.partitions import PartitionKey
from consumer.schemas import parse_request

pytestmark = pytest.mark.timeout(10)

REQUEST = {
    "id": "r",
    "candidate": {"id": "c", "text": "Python"},
    "job": {"id": "j", "title": "Engineer", "text": "Streams"},
}
BATCH = {"custom_id": "b", "method": "POST", "url": "/v1/chat/completions", "body": {}}


def test_the_field_gives_the_deadline() -> None:
    request = parse_request(json.dumps(REQUEST | {"deadline": "2026-12-04T10:00:00Z"}).encode())
    assert deadline_of(request, []) == 1796378400.0


@pytest.mark.parametrize(
    ("header", "expected"),
    [(b"1796378400000", 1796378400.0), (b"2026-12-04T11:00:00+01:00", 1796378400.0)],
)
def test_the_header_takes_epoch_milliseconds_or_iso_8601(header: bytes, expected: float) -> None:
    request = parse_request(json.dumps(BATCH).encode())
    assert deadline_of(request, [(HEADER, header)]) == expected


def test_with_field_and_header_the_earlier_holds() -> None:
    request = parse_request(json.dumps(REQUEST | {"deadline": "2026-12-04T10:00:00Z"}).encode())
    assert deadline_of(request, [(HEADER, b"1796378399000")]) == 1796378399.0


def test_no_deadline_is_none() -> None:
    assert deadline_of(parse_request(json.dumps(REQUEST).encode()), [("other", b"x")]) is None


def test_a_field_without_a_time_zone_is_invalid_input() -> None:
    job = Job(
        PartitionKey("t", 0, 1),
        0,
        b"k",
        json.dumps(REQUEST | {"deadline": "2026-12-04T10:00:00"}).encode(),
        [],
        0.0,
    )
    error = decode_job(job, 1 << 20)
    assert isinstance(error, DecodeError)
    assert error.reason == "invalid_schema"
    assert "deadline" in error.message


def test_a_malformed_header_is_dead_lettered_with_its_reason() -> None:
    job = Job(
        PartitionKey("t", 0, 1), 0, b"k", json.dumps(REQUEST).encode(), [(HEADER, b"soon")], 0.0
    )
    error = decode_job(job, 1 << 20)
    assert isinstance(error, DecodeError)
    assert error.reason == "invalid_deadline"
    assert HEADER in error.message
    assert "'soon'" in error.message
