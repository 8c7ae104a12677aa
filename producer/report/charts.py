"""The report's charts, one function each, drawn with matplotlib's Agg canvas into PNG bytes.

Figures are built on `matplotlib.figure.Figure` with an explicit Agg canvas rather than through
``pyplot``, so no global figure state or display backend is involved. A chart without data is
drawn as a placeholder saying so, never skipped, so the page always has the same sections.
"""

from __future__ import annotations

import io
import itertools
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from producer.report.load import ReportRow
from producer.report.stats import TimeBuckets, mean, percent, percentile

WIDTH_IN, HEIGHT_IN, DPI = 9.0, 4.0, 110
OK_COLOUR, ERROR_COLOUR, ACCENT = "#2e7d32", "#c62828", "#1565c0"
PERCENTILES = ((0.50, "p50", "#1565c0"), (0.95, "p95", "#ef6c00"), (0.99, "p99", "#c62828"))
# A box plot row per group needs this much height to keep its label readable.
ROW_HEIGHT_IN = 0.42


@dataclass(frozen=True, slots=True)
class Chart:
    """One rendered chart.

    Attributes:
        name: File-name stem and HTML id (``throughput``, ``latency``, ...).
        title: What it shows, used as the heading and the image's alt text.
        png: The PNG image.
        has_data: False when the image is the "no data" placeholder.
    """

    name: str
    title: str
    png: bytes
    has_data: bool = True


def _figure(height_in: float = HEIGHT_IN, columns: int = 1) -> tuple[Figure, list[Axes]]:
    """A figure on the Agg canvas with ``columns`` side-by-side axes."""
    figure = Figure(figsize=(WIDTH_IN, height_in), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = [figure.add_subplot(1, columns, index + 1) for index in range(columns)]
    for ax in axes:
        ax.grid(True, color="#e0e0e0", linewidth=0.8)
        ax.set_axisbelow(True)
        ax.spines[["top", "right"]].set_visible(False)
    return figure, axes


def _png(figure: Figure) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def placeholder(name: str, title: str, reason: str) -> Chart:
    """A chart that says there is nothing to draw, and why."""
    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN / 2), dpi=DPI)
    FigureCanvasAgg(figure)
    figure.suptitle(title, fontsize=12)
    figure.text(
        0.5, 0.42, f"no data: {reason}", ha="center", va="center", color="#757575", fontsize=13
    )
    return Chart(name, title, _png(figure), has_data=False)


def _time_axis(buckets: TimeBuckets) -> tuple[list[float], str]:
    """Bucket edges (one more than buckets) in a readable unit, and the axis label naming it."""
    span = buckets.edges_s[-1]
    unit, divisor = ("s", 1.0) if span <= 600 else ("min", 60.0)
    if span > 3 * 3600:
        unit, divisor = "h", 3600.0
    edges = [edge / divisor for edge in buckets.edges_s]
    start = buckets.start.strftime("%Y-%m-%d %H:%M:%S UTC")
    return edges, f"time since first result ({unit}; first at {start})"


def _width_text(width_s: float) -> str:
    """A bucket width for a title: ``5 s``, ``2 min``, ``1 h``."""
    if width_s < 60:
        return f"{width_s:g} s"
    if width_s < 3600:
        return f"{width_s / 60:g} min"
    return f"{width_s / 3600:g} h"


def throughput_chart(buckets: TimeBuckets | None) -> Chart:
    """Results per second over time, by completion time."""
    name, title = "throughput", "Results per second over time"
    if buckets is None:
        return placeholder(name, title, "no result has a completion time")
    figure, (ax,) = _figure()
    edges, label = _time_axis(buckets)
    rates = buckets.rates()
    ax.stairs(rates, edges, color=ACCENT, linewidth=1.6)
    ax.stairs(rates, edges, color=ACCENT, alpha=0.15, fill=True)
    ax.set_title(f"{title} ({_width_text(buckets.width_s)} buckets)")
    ax.set_xlabel(label)
    ax.set_ylabel("results / s")
    ax.set_ylim(bottom=0)
    ax.set_xlim(left=0)
    return Chart(name, title, _png(figure))


def latency_chart(buckets: TimeBuckets | None) -> Chart:
    """End-to-end latency percentiles (p50, p95, p99) per time bucket."""
    name, title = "latency", "End-to-end latency percentiles over time (since publish)"
    if buckets is None or all(math.isnan(value) for value in buckets.latency(0.5)):
        return placeholder(name, title, "no result has a completion time and a latency")
    figure, (ax,) = _figure()
    edges, label = _time_axis(buckets)
    middles = [(low + high) / 2 for low, high in itertools.pairwise(edges)]
    for share, legend, colour in PERCENTILES:
        ax.plot(
            middles,
            buckets.latency(share),
            marker=".",
            markersize=4,
            linewidth=1.4,
            color=colour,
            label=legend,
        )
    ax.set_title(f"{title} ({_width_text(buckets.width_s)} buckets)")
    ax.set_xlabel(label)
    ax.set_ylabel("since publish, incl. wait for a worker (s)")
    ax.set_ylim(bottom=0)
    ax.set_xlim(left=0)
    ax.legend(loc="upper left", frameon=False, ncols=3)
    return Chart(name, title, _png(figure))


def outcomes_chart(counts: Counter[str]) -> Chart:
    """Results per outcome: ``ok`` and each error reason."""
    name, title = "outcomes", "Results by status and error reason"
    if not counts:
        return placeholder(name, title, "the file holds no results")
    labels = sorted(counts, key=lambda label: (label != "ok", -counts[label], label))
    height = max(HEIGHT_IN / 2, 1.0 + ROW_HEIGHT_IN * len(labels))
    figure, (ax,) = _figure(height)
    values = [counts[label] for label in labels]
    colours = [OK_COLOUR if label == "ok" else ERROR_COLOUR for label in labels]
    bars = ax.barh([_short(label) for label in labels], values, color=colours)
    total = sum(values)
    ax.bar_label(
        bars, labels=[f"{v:,} ({percent(v, total)})" for v in values], padding=3, fontsize=9
    )
    ax.invert_yaxis()
    ax.set_xlim(0, max(values) * 1.25)
    ax.set_title(f"{title} (errors in red)")
    ax.set_xlabel("results")
    ax.grid(False, axis="y")
    return Chart(name, title, _png(figure))


def scores_chart(name: str, title: str, groups: Sequence[tuple[str, list[int]]]) -> Chart:
    """Score distributions as horizontal box plots, one row per group, labelled with its size."""
    if not groups:
        return placeholder(name, title, "no result has a score (all failed, or none were ok)")
    height = max(HEIGHT_IN / 1.5, 1.2 + ROW_HEIGHT_IN * len(groups))
    figure, (ax,) = _figure(height)
    ax.boxplot(
        [scores for _, scores in groups],
        orientation="horizontal",
        tick_labels=[f"{_short(label)}  (n={len(scores):,})" for label, scores in groups],
        widths=0.6,
        patch_artist=True,
        boxprops={"facecolor": "#bbdefb", "edgecolor": ACCENT},
        medianprops={"color": "#0d47a1", "linewidth": 2},
        flierprops={"marker": ".", "markersize": 3, "markeredgecolor": "#9e9e9e"},
    )
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_title(title)
    ax.set_xlabel("score (0-100)")
    ax.grid(False, axis="y")
    return Chart(name, title, _png(figure))


def _short(label: str, limit: int = 40) -> str:
    """A label cut to ``limit`` characters with an ellipsis, so tick labels stay on the page."""
    return label if len(label) <= limit else label[: limit - 1] + "\u2026"


def tokens_chart(rows: Sequence[ReportRow]) -> Chart:
    """Histograms of prompt and completion tokens per result, with mean and median marked."""
    name, title = "tokens", "Tokens per result"
    series = (
        ("prompt tokens", [row.prompt_tokens for row in rows if row.prompt_tokens]),
        ("completion tokens", [row.completion_tokens for row in rows if row.completion_tokens]),
    )
    if not any(values for _, values in series):
        return placeholder(name, title, "no result reports token usage")
    figure, axes = _figure(columns=2)
    figure.suptitle(f"{title} (results with usage > 0)")
    for ax, (label, values) in zip(axes, series, strict=True):
        ax.set_xlabel(label)
        if not values:
            ax.text(
                0.5,
                0.5,
                "no data",
                ha="center",
                va="center",
                transform=ax.transAxes,
                color="#757575",
            )
            continue
        ax.hist(values, bins=min(40, max(5, len(set(values)))), color=ACCENT, alpha=0.8)
        middle, average = percentile([float(v) for v in values], 0.5), mean(values)
        ax.axvline(middle or 0, color="#ef6c00", linestyle="--", label=f"median {middle:,.0f}")
        ax.axvline(average or 0, color="#c62828", linestyle=":", label=f"mean {average:,.0f}")
        ax.legend(frameon=False, fontsize=9)
    axes[0].set_ylabel("results")
    return Chart(name, title, _png(figure))
