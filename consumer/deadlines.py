"""A request's deadline: after it, the answer is worth nothing and no engine time is spent.

A native request carries it as ``deadline`` (ISO 8601 with a time zone); either request shape
may carry it in the ``evalstream-deadline`` header, as ISO 8601 or as milliseconds since the
epoch (Kafka's own unit for timestamps). With both, the earlier one holds. A request whose
deadline has passed when it would be sent to the engine (first call or a retry) gets a result
with status ``error`` and reason ``expired`` instead: upstream learns it was not evaluated, and
the offset is committed like any other outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from consumer.schemas import AnyRequest, EvaluationRequest

HEADER = "evalstream-deadline"


def deadline_of(request: AnyRequest, headers: Sequence[tuple[str, bytes]]) -> float | None:
    """The request's deadline in seconds since the epoch; None when it has none.

    Raises:
        ValueError: the header holds neither ISO 8601 with a time zone nor epoch milliseconds.
    """
    found: list[float] = []
    if isinstance(request, EvaluationRequest) and request.deadline is not None:
        found.append(request.deadline.timestamp())
    for name, value in headers:
        if name == HEADER:
            found.append(_parse_header(value))
    return min(found, default=None)


def _parse_header(value: bytes) -> float:
    text = value.decode("utf-8", errors="replace").strip()
    if text.isdigit():
        return int(text) / 1000
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ValueError(
            f"header {HEADER} is {text[:80]!r}: expected ISO 8601 with a time zone "
            "(2026-12-04T10:00:00Z) or milliseconds since the epoch"
        )
    return moment.timestamp()
