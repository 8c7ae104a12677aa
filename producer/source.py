"""`InputFile`: the checked lines of an input file (JSONL or CSV) or of stdin."""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

from producer.csv_input import CsvMapping, CsvRequestReader
from producer.errors import InputError
from producer.validation import CheckedLine, LineValidator

STDIN = "-"
_CHUNK_BYTES = 1 << 20


class InputKind(StrEnum):
    """The layout of the input."""

    JSONL = "jsonl"
    CSV = "csv"


class InputFile:
    """Reads and validates the requests of one input.

    Args:
        path: A file path, or ``-`` for stdin.
        validator: Checks each line against the contract.
        kind: JSONL (one request per line) or CSV (one per record, with a header).
        mapping: Column mapping for CSV.
        stdin: The stream behind ``-`` (tests inject one).
    """

    def __init__(
        self,
        path: str,
        validator: LineValidator,
        *,
        kind: InputKind = InputKind.JSONL,
        mapping: CsvMapping | None = None,
        stdin: BinaryIO | None = None,
    ) -> None:
        self.path = path
        self.validator = validator
        self.kind = kind
        self.mapping = mapping or CsvMapping()
        self._stdin = stdin
        if path != STDIN and not Path(path).is_file():
            raise InputError(f"{path}: no such file")

    @property
    def name(self) -> str:
        """How the input is named in messages."""
        return "stdin" if self.path == STDIN else self.path

    def count(self) -> int | None:
        """Counts the records up front for the progress bar; None for stdin (unknown)."""
        if self.path == STDIN:
            return None
        if self.kind is InputKind.CSV:
            with open(self.path, newline="", encoding="utf-8-sig", errors="replace") as stream:
                return max(0, sum(1 for _ in csv.reader(stream)) - 1)
        lines = 0
        last = b"\n"
        with open(self.path, "rb") as stream:
            while chunk := stream.read(_CHUNK_BYTES):
                lines += chunk.count(b"\n")
                last = chunk[-1:]
        return lines + (last != b"\n")

    def _open(self) -> AbstractContextManager[BinaryIO]:
        """Opens the input as bytes; stdin is left open for whoever owns it."""
        if self.path == STDIN:
            return nullcontext(self._stdin if self._stdin is not None else sys.stdin.buffer)
        return open(self.path, "rb")

    def __iter__(self) -> Iterator[CheckedLine]:
        with self._open() as stream:
            if self.kind is InputKind.CSV:
                yield from self._csv_lines(stream)
            else:
                yield from self._jsonl_lines(stream)

    def _jsonl_lines(self, stream: BinaryIO) -> Iterator[CheckedLine]:
        """Yields the checked non-blank lines of a JSONL stream."""
        for number, raw in enumerate(stream, start=1):
            checked = self.validator.check_line(number, raw)
            if checked is not None:
                yield checked

    def _csv_lines(self, stream: BinaryIO) -> Iterator[CheckedLine]:
        """Yields the checked records of a CSV stream."""
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace", newline="")
        try:
            for number, data in CsvRequestReader(text, self.mapping):
                yield self.validator.check_object(number, data)
        finally:
            text.detach()
