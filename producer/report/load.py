"""Reading a results file of ``collect`` (SQLite, Parquet or JSONL) into `ReportRow` values.

SQLite and Parquet hold the columns of `ResultView` plus ``json``, the message as received; a JSONL
file holds the messages, one a line, flattened here by the same `ResultView`. Results carry
no job id of their own; the job comes from the request's metadata, which the worker echoes back
(``job_id`` or ``job``, else ``job_family`` as `producer.synth` writes it).
"""

from __future__ import annotations

import importlib
import json
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from consumer.schemas import parse_result
from producer.errors import ReportInputError
from producer.result_view import ResultView

# The columns a report reads; a file without them is not a results file.
COLUMNS = (
    "request_id",
    "status",
    "error_reason",
    "score",
    "model",
    "variant",
    "prompt_tokens",
    "completion_tokens",
    "end_to_end_s",
    "completed_at",
    "json",
)
_SQLITE_SUFFIXES = {".db", ".sqlite", ".sqlite3"}
_PARQUET_SUFFIXES = {".parquet"}
_JSONL_SUFFIXES = {".jsonl", ".ndjson"}
# Metadata keys naming the job a result belongs to, most specific first.
_JOB_KEYS = ("job_id", "job", "job_family")


@dataclass(frozen=True, slots=True)
class ReportRow:
    """The facts of one result that the report draws.

    Attributes:
        request_id: The request it answers.
        status: ``ok`` or ``error``.
        error_reason: Why it failed, or None.
        score: The evaluation's score (0-100), or None without an evaluation.
        model: The model that answered, or None.
        variant: The A/B variant, or None.
        job: The job from the echoed request metadata, or None.
        prompt_tokens: Prompt tokens reported by the engine, or None.
        completion_tokens: Completion tokens reported by the engine, or None.
        end_to_end_s: Request timestamp until the result was produced, or None.
        completed_at: When the worker finished it (UTC), or None.
    """

    request_id: str
    status: str
    error_reason: str | None
    score: int | None
    model: str | None
    variant: str | None
    job: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    end_to_end_s: float | None
    completed_at: datetime | None


def load_results(path: str) -> list[ReportRow]:
    """Reads every result of a ``collect`` output file.

    Args:
        path: A ``.sqlite``/``.sqlite3``/``.db``, ``.parquet`` or ``.jsonl``/``.ndjson`` file.

    Raises:
        ReportInputError: The file is missing, has another suffix, or holds no results table.
    """
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in _SQLITE_SUFFIXES | _PARQUET_SUFFIXES | _JSONL_SUFFIXES:
        raise ReportInputError(
            f"{path}: cannot tell the format from the suffix {suffix or '(none)'!r}; "
            "expected .sqlite, .sqlite3, .db, .parquet, .jsonl or .ndjson"
        )
    if not file.is_file():
        raise ReportInputError(f"{path}: no such file")
    if suffix in _SQLITE_SUFFIXES:
        records = _sqlite_records(file)
    elif suffix in _PARQUET_SUFFIXES:
        records = _parquet_records(file)
    else:
        records = _jsonl_records(file)
    return [_row(record) for record in records]


def _jsonl_records(file: Path) -> list[dict[str, Any]]:
    """The results of a JSONL file written by ``collect --out results.jsonl`` (either shape).

    A batch output line has no completion time of its own (``collect`` takes the Kafka
    timestamp, which a JSONL file does not keep), so its row has none.
    """
    records = []
    try:
        with file.open("rb") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    view = ResultView.of(parse_result(line))
                except (ValidationError, ValueError, TypeError) as exc:
                    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    raise ReportInputError(
                        f"{file}: line {number} is not a result of collect ({reason})"
                    ) from exc
                record = {name: getattr(view, name) for name in COLUMNS if name != "json"}
                records.append({**record, "json": line.decode("utf-8", errors="replace")})
    except OSError as exc:
        raise ReportInputError(f"{file}: {exc.strerror}") from exc
    return records


def _sqlite_records(file: Path) -> list[dict[str, Any]]:
    """The rows of table ``results``, read-only so a wrong path never creates a database."""
    uri = f"{file.resolve().as_uri()}?mode=ro"
    try:
        with closing(sqlite3.connect(uri, uri=True)) as db:
            cursor = db.execute(f"SELECT {', '.join(COLUMNS)} FROM results")
            return [dict(zip(COLUMNS, values, strict=True)) for values in cursor]
    except sqlite3.Error as exc:
        raise ReportInputError(f"{file}: not a results database of collect ({exc})") from exc


def _parquet_records(file: Path) -> list[dict[str, Any]]:
    """The rows of a Parquet file written by ``collect --out results.parquet``."""
    try:
        parquet = importlib.import_module("pyarrow.parquet")
    except ImportError as exc:
        raise ReportInputError(
            f"{file}: reading Parquet needs pyarrow: pip install 'evalstream[parquet]'"
        ) from exc
    try:
        table = parquet.read_table(file, columns=list(COLUMNS))
    except Exception as exc:  # pyarrow raises ArrowInvalid, KeyError or OSError by case
        raise ReportInputError(f"{file}: not a results file of collect ({exc})") from exc
    records: list[dict[str, Any]] = table.to_pylist()
    return records


def _row(record: dict[str, Any]) -> ReportRow:
    """One `ReportRow` from the stored columns."""
    return ReportRow(
        request_id=str(record["request_id"]),
        status=str(record["status"]),
        error_reason=record["error_reason"],
        score=record["score"],
        model=record["model"],
        variant=record["variant"],
        job=_job(record["json"]),
        prompt_tokens=record["prompt_tokens"],
        completion_tokens=record["completion_tokens"],
        end_to_end_s=record["end_to_end_s"],
        completed_at=_moment(record["completed_at"]),
    )


def _job(text: object) -> str | None:
    """The job named in the echoed request metadata of the stored message, if any."""
    if not isinstance(text, str):
        return None
    try:
        message = json.loads(text)
    except ValueError:
        return None
    metadata = message.get("metadata") if isinstance(message, dict) else None
    if not isinstance(metadata, dict):
        return None
    for key in _JOB_KEYS:
        value = metadata.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            return str(value)
    return None


def _moment(value: object) -> datetime | None:
    """A UTC datetime from ISO 8601 text (SQLite) or a datetime (Parquet)."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
