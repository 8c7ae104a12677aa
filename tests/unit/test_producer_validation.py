"""LineValidator and InputFile: every line is checked and rejections name line and field."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from consumer.schemas import BatchRequestLine, EvaluationRequest
from producer.errors import InputError
from producer.source import InputFile
from producer.validation import (
    LineValidator,
    RejectedLine,
    RequestFormat,
    ValidLine,
    validate_object,
)

pytestmark = pytest.mark.timeout(30)


def native(request_id: str = "req-1", **overrides: Any) -> dict[str, Any]:
    """A valid native request."""
    data: dict[str, Any] = {
        "id": request_id,
        "candidate": {"id": "cand-1", "text": "Ten years of Kafka."},
        "job": {"id": "job-1", "title": "Data Engineer", "text": "We stream things."},
    }
    data.update(overrides)
    return data


def batch(custom_id: str = "b-1") -> dict[str, Any]:
    """A valid OpenAI batch input line."""
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
    }


def line(data: object) -> bytes:
    """One JSONL line."""
    return json.dumps(data).encode() + b"\n"


def rejection(checked: object) -> str:
    """The reason of a rejected line (fails the test for anything else)."""
    assert isinstance(checked, RejectedLine), checked
    return checked.reason


def test_valid_lines_keep_their_bytes_and_key() -> None:
    raw = b'{"id": " req-7 ", "candidate": {"id": "c", "text": "t"},' + (
        b' "job": {"id": "j", "title": "T", "text": "x"}}\r\n'
    )
    checked = LineValidator().check_line(3, raw)
    assert isinstance(checked, ValidLine)
    assert (checked.number, checked.request_id) == (3, "req-7")  # stripped, as the worker does
    assert checked.value == raw.rstrip(b"\r\n")


def test_auto_tells_native_and_batch_lines_apart() -> None:
    validator = LineValidator()
    first, second = validator.check_line(1, line(native())), validator.check_line(2, line(batch()))
    assert isinstance(first, ValidLine)
    assert isinstance(first.request, EvaluationRequest)
    assert isinstance(second, ValidLine)
    assert isinstance(second.request, BatchRequestLine)
    assert second.request_id == "b-1"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (native(candidate={"id": "c"}), "candidate.text: Field required"),
        (native(job={"id": "j", "title": "", "text": "x"}), "job.title: String should have at"),
        (native(priority=3), "priority: Extra inputs are not permitted"),
        (native(params={"max_tokens": 0}), "params.max_tokens: Input should be greater than"),
        ({**batch(), "method": "GET"}, "method: Input should be 'POST'"),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_rejections_name_the_field(data: object, reason: str) -> None:
    assert reason in rejection(LineValidator().check_line(5, line(data)))


def test_several_errors_are_listed_and_capped() -> None:
    data = {"id": "", "candidate": {}, "job": {}, "rubric": 5, "model": 7, "extra": 1}
    reason = rejection(LineValidator().check_line(1, line(data)))
    assert reason.count("; ") == 4
    assert reason.endswith("more)")


def test_undecodable_and_malformed_lines() -> None:
    validator = LineValidator()
    assert rejection(validator.check_line(1, b'{"id": \xff}')).startswith("not valid UTF-8")
    assert rejection(validator.check_line(2, b'{"id": "x",}')).startswith("invalid JSON:")


def test_forced_formats_reject_the_other_shape() -> None:
    assert "--format native" in rejection(
        LineValidator(RequestFormat.NATIVE).check_line(1, line(batch()))
    )
    assert "custom_id: Field required" in rejection(
        LineValidator(RequestFormat.OPENAI_BATCH).check_line(1, line(native()))
    )


def test_oversized_lines_are_rejected_before_parsing() -> None:
    reason = rejection(LineValidator(max_message_bytes=100).check_line(1, line(native())))
    assert "exceed the message limit of 100" in reason


def test_validate_object_raises_with_the_reason() -> None:
    with pytest.raises(ValueError, match=r"candidate\.id: Field required"):
        validate_object(native(candidate={"text": "t"}))


def test_source_numbers_lines_skips_blanks_and_strips_a_bom() -> None:
    data = b"\xef\xbb\xbf" + line(native("a")) + b"\n   \n" + line({"id": "b"}) + line(batch())
    checked = list(InputFile("-", LineValidator(), stdin=io.BytesIO(data)))
    assert [(type(c).__name__, c.number) for c in checked] == [
        ("ValidLine", 1),
        ("RejectedLine", 4),
        ("ValidLine", 5),
    ]


def test_source_counts_lines_for_the_progress_bar(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(line(native()) * 3 + json.dumps(native()).encode())  # no final newline
    source = InputFile(str(path), LineValidator())
    assert source.count() == 4
    assert InputFile("-", LineValidator(), stdin=io.BytesIO()).count() is None


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        InputFile(str(tmp_path / "absent.jsonl"), LineValidator())
