"""`ResultStats`: what a collect run saw, summarised for people (text) and benchmarks (JSON).

Quantiles interpolate linearly between the two nearest ranks (numpy's default), so p50 of an even
count is the mean of the middle pair. Throughput counts completions between the first and the
last ``completed_at``: ``(n - 1) / (last - first)``, the rate at which the results were produced,
independent of when the collector happened to start.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from producer.result_view import ResultView

LATENCY_QUANTILES = (0.5, 0.95, 0.99)
SCORE_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
DECILES = 10
_BAR_WIDTH = 30


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile of sorted values, interpolating linearly between ranks.

    Raises:
        ValueError: No values, or q outside [0, 1].
    """
    if not values:
        raise ValueError("quantile of no values")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be within [0, 1], got {q}")
    position = (len(values) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


def decile_histogram(scores: Sequence[int]) -> list[int]:
    """Counts scores in ten buckets 0-9, 10-19, ..., 90-100 (100 joins the last bucket)."""
    counts = [0] * DECILES
    for score in scores:
        counts[min(score // 10, DECILES - 1)] += 1
    return counts


def _label(index: int) -> str:
    """The score range of histogram bucket ``index``."""
    return f"{index * 10}-{index * 10 + 9}" if index < DECILES - 1 else "90-100"


@dataclass
class ResultStats:
    """Accumulates the facts of collected results.

    Attributes:
        distinct: Results with a request id not seen before in this run.
        duplicates: Results for an id already collected (at-least-once redelivery).
        invalid: Messages that were not a result of either shape.
        skipped: Distinct results the sink does not take (native results in a batch file).
        dead_letters: Requests answered by a dead letter instead of a result.
    """

    distinct: int = 0
    duplicates: int = 0
    invalid: int = 0
    skipped: int = 0
    dead_letters: int = 0
    dead_letter_reasons: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    recommendations: Counter[str] = field(default_factory=Counter)
    scores: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    first_completed: datetime | None = None
    last_completed: datetime | None = None

    def add(self, view: ResultView) -> None:
        """Counts one distinct result."""
        self.distinct += 1
        self.statuses[view.status] += 1
        if view.error_reason is not None:
            self.reasons[view.error_reason] += 1
        if view.recommendation is not None:
            self.recommendations[view.recommendation] += 1
        if view.score is not None:
            self.scores.append(view.score)
        if view.end_to_end_s is not None:
            self.latencies.append(view.end_to_end_s)
        if view.completed_at is not None:
            moment = view.completed_at
            if self.first_completed is None or moment < self.first_completed:
                self.first_completed = moment
            if self.last_completed is None or moment > self.last_completed:
                self.last_completed = moment

    def add_dead_letter(self, reason: str) -> None:
        """Counts one dead-lettered request."""
        self.dead_letters += 1
        self.dead_letter_reasons[reason] += 1

    @property
    def outcomes(self) -> int:
        """Requests with an outcome: distinct results plus dead letters."""
        return self.distinct + self.dead_letters

    def dead_letter_text(self) -> str:
        """``unknown_model 3, invalid_request 1``: the dead letters' reasons, most common first."""
        return ", ".join(f"{r} {n:,}" for r, n in self.dead_letter_reasons.most_common())

    @property
    def span_s(self) -> float:
        """Seconds between the first and the last completion (0.0 with fewer than two)."""
        if self.first_completed is None or self.last_completed is None:
            return 0.0
        return (self.last_completed - self.first_completed).total_seconds()

    @property
    def throughput(self) -> float | None:
        """Results per second between the first and last completion; None if unmeasurable."""
        span = self.span_s
        return (self.distinct - 1) / span if self.distinct >= 2 and span > 0 else None

    def score_summary(self) -> dict[str, Any]:
        """Count, mean, min, max, quantiles and the decile histogram of the scores."""
        ordered = sorted(self.scores)
        summary: dict[str, Any] = {"count": len(ordered)}
        if ordered:
            summary |= {
                "mean": round(sum(ordered) / len(ordered), 2),
                "min": ordered[0],
                "max": ordered[-1],
                "quantiles": {f"p{round(q * 100)}": quantile(ordered, q) for q in SCORE_QUANTILES},
            }
        summary["histogram"] = {
            _label(index): count for index, count in enumerate(decile_histogram(ordered))
        }
        return summary

    def latency_summary(self) -> dict[str, Any]:
        """Count, mean, max and p50/p95/p99 of end-to-end latency in seconds."""
        ordered = sorted(self.latencies)
        summary: dict[str, Any] = {"count": len(ordered)}
        if ordered:
            summary |= {
                f"p{round(q * 100)}": round(quantile(ordered, q), 4) for q in LATENCY_QUANTILES
            }
            summary |= {"mean": round(sum(ordered) / len(ordered), 4), "max": ordered[-1]}
        return summary

    def to_dict(self) -> dict[str, Any]:
        """Everything, as JSON-ready values."""
        return {
            "distinct": self.distinct,
            "duplicates": self.duplicates,
            "invalid": self.invalid,
            "skipped": self.skipped,
            "dead_letters": self.dead_letters,
            "dead_letter_reasons": dict(self.dead_letter_reasons.most_common()),
            "status": dict(sorted(self.statuses.items())),
            "error_reasons": dict(self.reasons.most_common()),
            "recommendations": dict(self.recommendations.most_common()),
            "score": self.score_summary(),
            "latency_s": self.latency_summary(),
            "throughput": {
                "results_per_s": self.throughput,
                "first_completed_at": _iso(self.first_completed),
                "last_completed_at": _iso(self.last_completed),
                "span_s": self.span_s,
            },
        }

    def render(self) -> str:
        """A few aligned lines for a terminal."""
        reasons = ", ".join(f"{reason} {count:,}" for reason, count in self.reasons.most_common())
        skipped = f" · {self.skipped:,} skipped" if self.skipped else ""
        lines = [
            f"results      {self.distinct:,} distinct · {self.duplicates:,} duplicates dropped"
            f" · {self.invalid:,} invalid{skipped}",
            f"status       ok {self.statuses['ok']:,} · error {self.statuses['error']:,}"
            + (f" ({reasons})" if reasons else ""),
        ]
        if self.dead_letters:
            lines.append(
                f"dead letters {self.dead_letters:,} ({self.dead_letter_text()}); "
                "not in the results file"
            )
        lines += self._render_scores()
        latency = self.latency_summary()
        if latency["count"]:
            lines.append(
                f"latency      end-to-end p50 {latency['p50']:.3f} s · p95 {latency['p95']:.3f} s"
                f" · p99 {latency['p99']:.3f} s"
            )
        if (rate := self.throughput) is not None:
            lines.append(f"throughput   {rate:,.2f} results/s over {self.span_s:,.1f} s")
        return "\n".join(lines)

    def _render_scores(self) -> list[str]:
        """Score quantiles and a histogram with one bar per decile."""
        scores = self.score_summary()
        if not scores["count"]:
            return []
        quantiles = " · ".join(f"{name} {value:g}" for name, value in scores["quantiles"].items())
        lines = [
            f"score        mean {scores['mean']:g} · min {scores['min']} · {quantiles} · "
            f"max {scores['max']}"
        ]
        peak = max(scores["histogram"].values())
        for label, count in scores["histogram"].items():
            bar = "█" * round(_BAR_WIDTH * count / peak) if peak else ""
            lines.append(f"  {label:>6}   {bar} {count:,}")
        return lines


def _iso(moment: datetime | None) -> str | None:
    """ISO 8601 text of a datetime, or None."""
    return moment.isoformat() if moment is not None else None
