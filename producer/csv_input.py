"""Reads evaluation requests from CSV, one record per request.

Columns map to request fields by dotted path (``candidate.text``, ``job.title``,
``metadata.source``). A column already named by its path needs no mapping; others are mapped with
``--csv-map resume=candidate.text,posting=job.text``, and ``col=`` drops a column. Unknown columns
are an error rather than silently ignored, so a typo cannot lose a field. Empty cells leave the
field out (CSV has no null); ``candidate.skills`` is a ``;``-separated list.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping
from typing import Any, TextIO

from pydantic import BaseModel

from consumer.schemas import Candidate, EvaluationRequest, GenerationParams, Job
from producer.errors import InputError

LIST_SEPARATOR = ";"
_LIST_FIELDS = frozenset({"candidate.skills"})
_NESTED: dict[str, type[BaseModel]] = {
    "candidate": Candidate,
    "job": Job,
    "params": GenerationParams,
}


def known_fields() -> frozenset[str]:
    """Every dotted request field a column may map to (besides ``metadata.<key>``)."""
    paths: set[str] = set()
    for name in EvaluationRequest.model_fields:
        nested = _NESTED.get(name)
        if nested is None:
            paths.add(name)
        else:
            paths.update(f"{name}.{field}" for field in nested.model_fields)
    return frozenset(paths)


def _is_target(path: str) -> bool:
    """Whether a dotted path names a field a CSV cell can fill."""
    if path.startswith("metadata.") and len(path) > len("metadata."):
        return True
    return path in known_fields()


class CsvMapping:
    """Which request field each CSV column fills.

    Args:
        explicit: Column name to dotted field path; an empty path drops the column.
    """

    def __init__(self, explicit: Mapping[str, str] | None = None) -> None:
        self.explicit = dict(explicit or {})
        unknown = [path for path in self.explicit.values() if path and not _is_target(path)]
        if unknown:
            raise InputError(f"--csv-map: unknown request field(s): {', '.join(unknown)}")

    @classmethod
    def parse(cls, spec: str | None) -> CsvMapping:
        """Parses ``col=field,col2=field2`` (the ``--csv-map`` syntax).

        Raises:
            InputError: An item has no ``=`` or names an unknown field.
        """
        explicit: dict[str, str] = {}
        for item in (spec or "").split(","):
            if not item.strip():
                continue
            column, sep, path = item.partition("=")
            if not sep:
                raise InputError(f"--csv-map: expected column=field, got {item!r}")
            explicit[column.strip()] = path.strip()
        return cls(explicit)

    def resolve(self, header: list[str]) -> dict[str, str]:
        """Maps the columns of a header to field paths, leaving out dropped columns.

        Raises:
            InputError: A column is neither mapped nor named after a field.
        """
        resolved: dict[str, str] = {}
        unknown: list[str] = []
        for column in header:
            path = self.explicit.get(column, column)
            if not path:
                continue
            if not _is_target(path):
                unknown.append(column)
            resolved[column] = path
        if unknown:
            raise InputError(
                f"CSV column(s) {', '.join(map(repr, unknown))} match no request field; "
                "map them with --csv-map column=field.path, or drop them with column="
            )
        return resolved


def build_request(row: Mapping[str, str], columns: Mapping[str, str]) -> dict[str, Any]:
    """Nests one CSV record into a request dict.

    Args:
        row: Column name to cell text.
        columns: Column name to dotted field path (from `CsvMapping.resolve`).
    """
    request: dict[str, Any] = {}
    for column, path in columns.items():
        cell = row.get(column)
        if cell is None or not cell.strip():
            continue
        value: Any = cell
        if path in _LIST_FIELDS:
            value = [part.strip() for part in cell.split(LIST_SEPARATOR) if part.strip()]
        elif path == "metadata":
            value = _json_object(column, cell)
        head, _, tail = path.partition(".")
        if tail:
            request.setdefault(head, {})[tail] = value
        else:
            request[head] = value
    return request


def _json_object(column: str, cell: str) -> dict[str, Any] | str:
    """Decodes a whole-``metadata`` cell; anything but a JSON object is left for validation."""
    try:
        decoded = json.loads(cell)
    except json.JSONDecodeError:
        return cell
    return decoded if isinstance(decoded, dict) else cell


class CsvRequestReader:
    """Iterates ``(line number, request dict)`` over a CSV stream with a header row.

    The number is the physical line where the record starts (the header is line 1), so it points
    at the right place even when quoted cells such as resumes span several lines.

    Args:
        stream: A text stream opened with ``newline=""``.
        mapping: The column mapping.
    """

    def __init__(self, stream: TextIO, mapping: CsvMapping | None = None) -> None:
        self._reader = csv.reader(stream)
        self._mapping = mapping or CsvMapping()

    def __iter__(self) -> Iterator[tuple[int, dict[str, Any]]]:
        header = next(self._reader, None)
        if header is None:
            return
        header = [name.strip() for name in header]
        columns = self._mapping.resolve(header)
        start = self._reader.line_num + 1
        for cells in self._reader:
            if any(cell.strip() for cell in cells):
                yield start, build_request(dict(zip(header, cells, strict=False)), columns)
            start = self._reader.line_num + 1
