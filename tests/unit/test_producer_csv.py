"""CSV input: column mapping, nesting, lists, and line numbers of multi-line records."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from consumer.schemas import EvaluationRequest
from producer.csv_input import CsvMapping, CsvRequestReader, build_request
from producer.errors import InputError
from producer.source import InputFile, InputKind
from producer.validation import LineValidator, RejectedLine, ValidLine

pytestmark = pytest.mark.timeout(30)

MAP = "req=id,cand=candidate.id,resume=candidate.text,posting=job.id,title=job.title,ad=job.text"


def csv_text(rows: list[list[str]]) -> str:
    """Rows as CSV text (quoting multi-line cells)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def test_mapping_parses_and_checks_fields() -> None:
    mapping = CsvMapping.parse(" resume = candidate.text , notes= ,")
    assert mapping.explicit == {"resume": "candidate.text", "notes": ""}
    with pytest.raises(InputError, match="expected column=field"):
        CsvMapping.parse("resume")
    with pytest.raises(InputError, match=r"unknown request field\(s\): candidate\.txt"):
        CsvMapping.parse("resume=candidate.txt")


def test_columns_named_after_fields_need_no_mapping_and_unknown_ones_fail() -> None:
    mapping = CsvMapping.parse("notes=")
    resolved = mapping.resolve(["id", "job.title", "metadata.source", "notes"])
    assert resolved == {"id": "id", "job.title": "job.title", "metadata.source": "metadata.source"}
    with pytest.raises(InputError, match="'colour' match no request field"):
        mapping.resolve(["id", "colour"])


def test_build_request_nests_fields_splits_skills_and_drops_empty_cells() -> None:
    columns = {
        "id": "id",
        "skills": "candidate.skills",
        "years": "candidate.years_experience",
        "src": "metadata.source",
        "rubric": "rubric",
    }
    row = {"id": "r1", "skills": "Kafka; SQL ;", "years": "4.5", "src": "ats", "rubric": " "}
    assert build_request(row, columns) == {
        "id": "r1",
        "candidate": {"skills": ["Kafka", "SQL"], "years_experience": "4.5"},
        "metadata": {"source": "ats"},
    }


def test_records_validate_and_report_their_starting_line(tmp_path: Path) -> None:
    rows = [
        ["req", "cand", "resume", "posting", "title", "ad"],
        ["r1", "c1", "Line one\nLine two\nLine three", "j1", "Engineer", "Build it"],
        ["r2", "c2", "", "j1", "Engineer", "Build it"],  # starts on line 5, no resume
        [],
        ["r3", "c3", "Short", "j1", "Engineer", "Build\nit"],
    ]
    path = tmp_path / "in.csv"
    path.write_text(csv_text(rows), encoding="utf-8")
    source = InputFile(
        str(path), LineValidator(), kind=InputKind.CSV, mapping=CsvMapping.parse(MAP)
    )
    checked = list(source)
    assert source.count() == 4  # records, including the blank one
    assert [(type(c).__name__, c.number) for c in checked] == [
        ("ValidLine", 2),
        ("RejectedLine", 5),
        ("ValidLine", 7),
    ]
    first, rejected = checked[0], checked[1]
    assert isinstance(first, ValidLine)
    assert isinstance(first.request, EvaluationRequest)
    assert first.request.candidate.text == "Line one\nLine two\nLine three"
    assert json.loads(first.value)["job"] == {"id": "j1", "title": "Engineer", "text": "Build it"}
    assert isinstance(rejected, RejectedLine)
    assert rejected.reason == "candidate.text: Field required"


def test_reader_of_an_empty_stream_yields_nothing() -> None:
    assert list(CsvRequestReader(io.StringIO(""))) == []
