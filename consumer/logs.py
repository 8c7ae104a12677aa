"""Logging setup: human-readable text or one JSON object per line.

Error lines about a request carry ``request_id``, ``partition`` and ``offset`` (passed
as ``extra``); the JSON format keeps them as fields. Secrets never reach a log line:
settings hold them as ``SecretStr``, which prints as ``**********``.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

_CONTEXT = ("request_id", "partition", "offset", "reason", "worker")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with the request context fields when present."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _CONTEXT:
            value = record.__dict__.get(name)
            if value is not None:
                data[name] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


class ContextTextFormatter(logging.Formatter):
    """Plain text with the request context appended as ``key=value``."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = [
            f"{n}={record.__dict__[n]}" for n in _CONTEXT if record.__dict__.get(n) is not None
        ]
        return f"{line} {' '.join(context)}" if context else line


def configure_logging(fmt: str, level: str) -> None:
    """Installs the root handler in the chosen format."""
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            ContextTextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("httpx").setLevel(logging.WARNING)


def plain_text(docstring: str | None) -> str:
    """A docstring for a terminal: RST's double back-ticks dropped (``--help`` texts)."""
    return (docstring or "").replace("``", "")
