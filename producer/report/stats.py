"""The numbers behind the report: the summary table and the time buckets of the charts.

Pure Python over `ReportRow` values, so every figure the page shows can be checked without
drawing anything.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise

from producer.report.load import ReportRow

# Bucket widths the time charts choose from, in seconds: round numbers a reader can take in.
_BUCKET_STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400)
# About this many buckets across the run: enough to see ramps, few enough that each holds results.
TARGET_BUCKETS = 60
# A rate over a shorter span measures the clock, not the run: results that all expired, or came
# from a cache, complete within milliseconds, and n / 0.001 s is no throughput anyone gets.
MIN_RATE_SPAN_S = float(_BUCKET_STEPS_S[0])


def percentile(values: Sequence[float], share: float) -> float | None:
    """The ``share`` percentile (0-1) of the values, linearly interpolated; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * share
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def mean(values: Iterable[float]) -> float | None:
    """The arithmetic mean, or None when there are no values."""
    items = list(values)
    return sum(items) / len(items) if items else None


@dataclass(frozen=True, slots=True)
class Summary:
    """The table at the top of the report.

    Attributes:
        results: How many results the file holds.
        ok: How many of them have status ``ok``.
        first: The earliest completion time, or None.
        last: The latest completion time, or None.
        latency_p50_s: Median end-to-end latency in seconds, or None.
        latency_p95_s: 95th percentile end-to-end latency in seconds, or None.
        prompt_tokens: Mean prompt tokens per result, or None.
        completion_tokens: Mean completion tokens per result, or None.
    """

    results: int
    ok: int
    first: datetime | None
    last: datetime | None
    latency_p50_s: float | None
    latency_p95_s: float | None
    prompt_tokens: float | None
    completion_tokens: float | None

    @property
    def ok_share(self) -> float | None:
        """The share of results with status ``ok`` (0-1), or None without results."""
        return self.ok / self.results if self.results else None

    @property
    def span_s(self) -> float | None:
        """Seconds from the first to the last completion, or None without times."""
        if self.first is None or self.last is None:
            return None
        return (self.last - self.first).total_seconds()

    @property
    def rate(self) -> float | None:
        """Results per second over the span; None when it is shorter than `MIN_RATE_SPAN_S`."""
        span = self.span_s
        return self.results / span if span is not None and span >= MIN_RATE_SPAN_S else None

    @classmethod
    def of(cls, rows: Sequence[ReportRow]) -> Summary:
        """Summarises the rows."""
        times = [row.completed_at for row in rows if row.completed_at is not None]
        latencies = [row.end_to_end_s for row in rows if row.end_to_end_s is not None]
        return cls(
            results=len(rows),
            ok=sum(1 for row in rows if row.status == "ok"),
            first=min(times) if times else None,
            last=max(times) if times else None,
            latency_p50_s=percentile(latencies, 0.50),
            latency_p95_s=percentile(latencies, 0.95),
            prompt_tokens=mean(row.prompt_tokens for row in rows if row.prompt_tokens is not None),
            completion_tokens=mean(
                row.completion_tokens for row in rows if row.completion_tokens is not None
            ),
        )


def bucket_width(span_s: float, target: int = TARGET_BUCKETS) -> float:
    """The smallest round bucket width that splits the span into at most ``target`` buckets."""
    for step in _BUCKET_STEPS_S:
        if span_s / step <= target:
            return float(step)
    return float(_BUCKET_STEPS_S[-1])


@dataclass(frozen=True, slots=True)
class TimeBuckets:
    """Rows grouped by completion time into buckets from the first to the last completion.

    Buckets are ``width_s`` wide except the last, which ends at the last completion so a run
    does not appear to slow down in its final, partly filled bucket. A last bucket of at most
    half a width is merged into the one before it, so a lone straggler does not get a rate of
    its own.

    Attributes:
        start: The first completion time (bucket 0 starts here).
        width_s: The nominal width of each bucket in seconds.
        edges_s: The bucket boundaries in seconds after ``start``; one more than the buckets.
        members: The rows of each bucket, in time order; empty buckets included.
    """

    start: datetime
    width_s: float
    edges_s: tuple[float, ...]
    members: tuple[tuple[ReportRow, ...], ...]

    @classmethod
    def of(cls, rows: Sequence[ReportRow]) -> TimeBuckets | None:
        """Buckets the rows that have a completion time; None when none has one."""
        timed = sorted(
            ((row.completed_at, row) for row in rows if row.completed_at is not None),
            key=lambda pair: pair[0],
        )
        if not timed:
            return None
        start = timed[0][0]
        span = (timed[-1][0] - start).total_seconds()
        width = bucket_width(span)
        count = int(span // width) + 1
        if count > 1 and span - (count - 1) * width <= width / 2:
            count -= 1
        groups: list[list[ReportRow]] = [[] for _ in range(count)]
        for moment, row in timed:
            index = int((moment - start).total_seconds() // width)
            groups[min(index, count - 1)].append(row)
        # A run shorter than one bucket still gets one bucket of nominal width, so its rate is
        # results per width (not per millisecond) and its axis matches the width in the title.
        edges = [index * width for index in range(count)] + [max(span, width)]
        return cls(start, width, tuple(edges), tuple(tuple(group) for group in groups))

    def rates(self) -> list[float]:
        """Results per second in each bucket."""
        return [
            len(group) / (high - low)
            for group, (low, high) in zip(self.members, pairwise(self.edges_s), strict=True)
        ]

    def latency(self, share: float) -> list[float]:
        """The ``share`` percentile of end-to-end latency per bucket (NaN where none)."""
        values: list[float] = []
        for group in self.members:
            latencies = [row.end_to_end_s for row in group if row.end_to_end_s is not None]
            value = percentile(latencies, share)
            values.append(math.nan if value is None else value)
        return values


def percent(part: int, whole: int) -> str:
    """``part`` of ``whole`` to one decimal, never rounded onto 0.0% or 100.0% when not exact.

    2 errors in 5,459 are 99.96% ok: plain rounding prints 100.0% and hides them, so a share
    short of the whole rounds down to 99.9% (and a share above nothing rounds up to 0.1%).
    """
    share = 100 * part / whole
    if part < whole:
        share = min(share, 99.9)
    if part > 0:
        share = max(share, 0.1)
    return f"{share:.1f}%"


def outcome_counts(rows: Iterable[ReportRow]) -> Counter[str]:
    """Results per outcome: ``ok``, or the error reason (``error`` when none is given)."""
    return Counter("ok" if row.status == "ok" else (row.error_reason or "error") for row in rows)


def scores_by(rows: Iterable[ReportRow], key: str, limit: int) -> list[tuple[str, list[int]]]:
    """Scores grouped by a row attribute, the largest groups first.

    Groups beyond ``limit`` are merged into one labelled ``other (N)``; rows without a value
    for the attribute form the group ``(none)``.

    Args:
        rows: The results.
        key: ``job`` or ``model_variant`` (the model, with the variant after a slash).
        limit: How many groups to keep apart at most.
    """
    groups: dict[str, list[int]] = {}
    for row in rows:
        if row.score is None:
            continue
        groups.setdefault(_group_label(row, key), []).append(row.score)
    ordered = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
    if len(ordered) <= limit:
        return ordered
    kept, rest = ordered[: limit - 1], ordered[limit - 1 :]
    merged = [score for _, scores in rest for score in scores]
    return [*kept, (f"other ({len(rest)})", merged)]


def _group_label(row: ReportRow, key: str) -> str:
    """The label of the row's group under ``key``."""
    if key == "model_variant":
        model = row.model or "(none)"
        return f"{model} / {row.variant}" if row.variant else model
    value = getattr(row, key)
    return str(value) if value is not None else "(none)"
