"""Where collected results go: SQLite, JSONL, Parquet, or an OpenAI batch output file.

Every sink receives each request id at most once per run (the collector de-duplicates first).
The SQLite sink also upserts, so collecting into an existing database again refreshes rows
instead of failing or doubling them. The file sinks start a fresh file.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import fields
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Protocol, TextIO

from consumer.schemas import AnyResult, BatchOutputLine
from producer.errors import ResultStoreError
from producer.result_view import ResultView


class SinkFormat(StrEnum):
    """Output formats of ``collect``."""

    AUTO = "auto"
    SQLITE = "sqlite"
    JSONL = "jsonl"
    PARQUET = "parquet"
    OPENAI_BATCH = "openai-batch"


_SUFFIXES = {
    ".db": SinkFormat.SQLITE,
    ".sqlite": SinkFormat.SQLITE,
    ".sqlite3": SinkFormat.SQLITE,
    ".jsonl": SinkFormat.JSONL,
    ".ndjson": SinkFormat.JSONL,
    ".parquet": SinkFormat.PARQUET,
}


def infer_format(path: str) -> SinkFormat:
    """Picks the format from the file name (``.db``/``.sqlite`` or ``.jsonl``/``.ndjson``).

    Raises:
        ResultStoreError: The suffix names no format.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIXES:
        raise ResultStoreError(
            f"cannot tell the format of {path!r} from its suffix; pass --format sqlite, jsonl, "
            "parquet or openai-batch"
        )
    return _SUFFIXES[suffix]


class ResultStore(Protocol):
    """Receives each distinct result once."""

    description: str

    def accepts(self, result: AnyResult) -> bool:
        """Whether this sink stores results of this shape."""
        ...

    def write(self, result: AnyResult, value: bytes, view: ResultView) -> None:
        """Stores one result; ``value`` is the message as received."""
        ...

    def flush(self) -> None:
        """Makes everything written so far durable."""
        ...

    def close(self) -> None:
        """Flushes and releases the output."""
        ...


# Columns after the primary key, in `ResultView` order minus its first field (the request id).
_VIEW_COLUMNS = tuple(f.name for f in fields(ResultView))[1:]
_COLUMN_TYPES = {
    "score": "INTEGER",
    "attempts": "INTEGER",
    "prompt_tokens": "INTEGER",
    "completion_tokens": "INTEGER",
    "queued_s": "REAL",
    "inference_s": "REAL",
    "end_to_end_s": "REAL",
}
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS results (\n  request_id TEXT PRIMARY KEY,\n"
    + "".join(f"  {name} {_COLUMN_TYPES.get(name, 'TEXT')},\n" for name in _VIEW_COLUMNS)
    + "  json TEXT NOT NULL\n)"
)
_INDEXES = (
    "CREATE INDEX IF NOT EXISTS results_status ON results (status)",
    "CREATE INDEX IF NOT EXISTS results_score ON results (score)",
)
_UPSERT = (
    f"INSERT INTO results (request_id, {', '.join(_VIEW_COLUMNS)}, json) "
    f"VALUES ({', '.join('?' * (len(_VIEW_COLUMNS) + 2))}) "
    "ON CONFLICT (request_id) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in (*_VIEW_COLUMNS, "json"))
)


class SqliteSink:
    """Upserts results into table ``results`` (primary key ``request_id``).

    Columns hold the facts of `ResultView` (status, reason, score, recommendation, model,
    variant, timings, tokens, completed_at as ISO 8601) and ``json`` the full message.

    Args:
        path: The database file; created with the table and indexes if needed.
    """

    def __init__(self, path: str) -> None:
        self.description = f"{path} (sqlite, table results)"
        try:
            self._db = sqlite3.connect(path)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(_SCHEMA)
            for statement in _INDEXES:
                self._db.execute(statement)
            self._db.commit()
        except sqlite3.Error as exc:
            raise ResultStoreError(f"{path}: {exc}") from exc

    def accepts(self, result: AnyResult) -> bool:
        """Takes both shapes."""
        return True

    def write(self, result: AnyResult, value: bytes, view: ResultView) -> None:
        """Upserts one row (committed by the next `flush`)."""
        columns = (_sql_value(getattr(view, name)) for name in _VIEW_COLUMNS)
        text = value.decode("utf-8", errors="replace")
        self._db.execute(_UPSERT, (view.request_id, *columns, text))

    def flush(self) -> None:
        """Commits the open transaction."""
        self._db.commit()

    def close(self) -> None:
        """Commits and closes the database."""
        self._db.commit()
        self._db.close()


class JsonlSink:
    """Writes one JSON line per request id, the message as received (first occurrence wins)."""

    def __init__(self, path: str) -> None:
        self.description = f"{path} (jsonl)"
        self._file = _open_text(path)

    def accepts(self, result: AnyResult) -> bool:
        """Takes both shapes."""
        return True

    def write(self, result: AnyResult, value: bytes, view: ResultView) -> None:
        """Appends the message; multi-line JSON is compacted to keep one result per line."""
        text = value.decode("utf-8", errors="replace")
        if "\n" in text or "\r" in text:
            text = json.dumps(json.loads(text), ensure_ascii=False, separators=(",", ":"))
        self._file.write(text + "\n")

    def flush(self) -> None:
        """Flushes the file buffer."""
        self._file.flush()

    def close(self) -> None:
        """Closes the file."""
        self._file.close()


class BatchOutputSink:
    """Writes an OpenAI batch output file: ``id``, ``custom_id``, ``response``, ``error``.

    Native results have no place in that format and are skipped (the summary counts them).
    """

    def __init__(self, path: str) -> None:
        self.description = f"{path} (openai-batch output)"
        self._file = _open_text(path)

    def accepts(self, result: AnyResult) -> bool:
        """Takes batch output lines only."""
        return isinstance(result, BatchOutputLine)

    def write(self, result: AnyResult, value: bytes, view: ResultView) -> None:
        """Appends the line with exactly OpenAI's four fields (absent members as null)."""
        self._file.write(result.model_dump_json() + "\n")

    def flush(self) -> None:
        """Flushes the file buffer."""
        self._file.flush()

    def close(self) -> None:
        """Closes the file."""
        self._file.close()


def _sql_value(value: object) -> object:
    """A column value SQLite stores as is; datetimes become ISO 8601 text."""
    return value.isoformat() if isinstance(value, datetime) else value


def _open_text(path: str) -> TextIO:
    """Opens a fresh UTF-8 output file."""
    try:
        return Path(path).open("w", encoding="utf-8")
    except OSError as exc:
        raise ResultStoreError(f"{path}: {exc.strerror}") from exc


def sink_appends(path: str, fmt: SinkFormat = SinkFormat.AUTO) -> bool:
    """Whether the sink adds to an existing file (SQLite) rather than starting a fresh one."""
    return (infer_format(path) if fmt is SinkFormat.AUTO else fmt) is SinkFormat.SQLITE


def open_sink(path: str, fmt: SinkFormat = SinkFormat.AUTO) -> ResultStore:
    """Opens the sink for a path and format (``auto`` infers it from the suffix)."""
    if fmt is SinkFormat.AUTO:
        fmt = infer_format(path)
    if fmt is SinkFormat.SQLITE:
        return SqliteSink(path)
    if fmt is SinkFormat.JSONL:
        return JsonlSink(path)
    if fmt is SinkFormat.PARQUET:
        from producer.parquet_sink import ParquetSink  # pyarrow only where Parquet is asked for

        return ParquetSink(path)
    return BatchOutputSink(path)
