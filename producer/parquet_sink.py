"""``collect --out results.parquet``: results as typed columns for pandas, DuckDB or Spark.

One row per request with the facts of `ResultView` in typed columns (score and tokens as
integers, timings as doubles, completed_at as a UTC timestamp) and ``json``, the message as
received. Each `flush` writes the rows gathered since the last one as a row group, so memory
stays bounded however many results are collected. Needs pyarrow (``pip install
'evalstream[parquet]'``).
"""

from __future__ import annotations

import importlib
from dataclasses import fields
from typing import Any

from consumer.schemas import AnyResult
from producer.errors import ResultStoreError
from producer.result_view import ResultView

_INTEGERS = {"score", "attempts", "prompt_tokens", "completion_tokens"}
_DOUBLES = {"queued_s", "inference_s", "end_to_end_s"}
_COLUMNS = tuple(f.name for f in fields(ResultView))


def _pyarrow() -> Any:
    try:
        return importlib.import_module("pyarrow"), importlib.import_module("pyarrow.parquet")
    except ImportError as exc:
        raise ResultStoreError(
            "writing Parquet needs pyarrow: pip install 'evalstream[parquet]'"
        ) from exc


def _schema(pa: Any) -> Any:
    def kind(name: str) -> Any:
        if name in _INTEGERS:
            return pa.int64()
        if name in _DOUBLES:
            return pa.float64()
        if name == "completed_at":
            return pa.timestamp("us", tz="UTC")
        return pa.string()

    return pa.schema([(name, kind(name)) for name in _COLUMNS] + [("json", pa.string())])


class ParquetSink:
    """Writes results to a Parquet file, one row group per flush.

    Args:
        path: The file; written afresh.
    """

    def __init__(self, path: str) -> None:
        self.description = f"{path} (parquet)"
        self._pa, parquet = _pyarrow()
        self._schema = _schema(self._pa)
        self._rows: list[dict[str, Any]] = []
        try:
            self._writer = parquet.ParquetWriter(path, self._schema)
        except OSError as exc:
            raise ResultStoreError(f"{path}: {exc}") from exc

    def accepts(self, result: AnyResult) -> bool:
        """Takes both shapes."""
        return True

    def write(self, result: AnyResult, value: bytes, view: ResultView) -> None:
        """Keeps one row until the next `flush`."""
        row = {name: getattr(view, name) for name in _COLUMNS}
        row["json"] = value.decode("utf-8", errors="replace")
        self._rows.append(row)

    def flush(self) -> None:
        """Writes the rows kept so far as one row group."""
        if self._rows:
            table = self._pa.Table.from_pylist(self._rows, schema=self._schema)
            self._writer.write_table(table)
            self._rows = []

    def close(self) -> None:
        """Writes what is left and the file's footer."""
        self.flush()
        self._writer.close()
