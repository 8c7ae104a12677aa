"""The report page: one self-contained HTML file, the charts inlined as base64 PNG data URIs.

No script, stylesheet, font or image is fetched from anywhere: the file can be mailed, attached to
a ticket or opened offline and looks the same.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import datetime
from html import escape

from producer.report.charts import Chart
from producer.report.stats import MIN_RATE_SPAN_S, Summary, percent

# End-to-end latency runs from the request's timestamp (its publish time, or created_at), so it
# includes any time the request waited in the topic before a worker read it: a backlog published
# before the workers started shows up here, and the label says so.
LATENCY_LABEL = "End-to-end latency (since publish, incl. wait for a worker)"

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 1040px; padding: 0 1rem; color: #212121; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
p.source { color: #616161; margin-top: 0; }
table.summary { border-collapse: collapse; margin: 1rem 0 2rem; }
table.summary th, table.summary td { padding: 0.3rem 1rem; border-bottom: 1px solid #e0e0e0;
       text-align: left; }
table.summary td { font-variant-numeric: tabular-nums; text-align: right; }
section.chart { margin-bottom: 2rem; }
section.chart h2 { font-size: 1.15rem; }
section.chart img { max-width: 100%; height: auto; border: 1px solid #eeeeee; }
"""


def summary_rows(summary: Summary) -> list[tuple[str, str]]:
    """The summary table as (label, formatted value) pairs, in display order."""
    return [
        ("Results", f"{summary.results:,}"),
        ("OK", _share(summary.ok, summary.results)),
        ("First result", _moment(summary.first)),
        ("Last result", _moment(summary.last)),
        ("Time span", _span(summary.span_s)),
        ("Results per second", _rate(summary)),
        (f"{LATENCY_LABEL} p50", _number(summary.latency_p50_s, "{:,.3f} s")),
        (f"{LATENCY_LABEL} p95", _number(summary.latency_p95_s, "{:,.3f} s")),
        ("Prompt tokens per result (mean)", _number(summary.prompt_tokens, "{:,.1f}")),
        ("Completion tokens per result (mean)", _number(summary.completion_tokens, "{:,.1f}")),
    ]


def render_page(source: str, summary: Summary, charts: Sequence[Chart]) -> str:
    """The whole HTML document.

    Args:
        source: The results file the report was made from, shown under the heading.
        summary: The numbers of the table at the top.
        charts: The charts, in page order.
    """
    table = "\n".join(
        f'<tr><th scope="row">{escape(label)}</th><td>{escape(value)}</td></tr>'
        for label, value in summary_rows(summary)
    )
    sections = "\n".join(_section(chart) for chart in charts)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>evalstream report: {escape(source)}</title>\n"
        f"<style>{_STYLE}</style>\n</head>\n<body>\n"
        "<h1>evalstream results report</h1>\n"
        f'<p class="source">{escape(source)}</p>\n'
        f'<table class="summary" id="summary">\n{table}\n</table>\n'
        f"{sections}\n</body>\n</html>\n"
    )


def _section(chart: Chart) -> str:
    """One chart: its heading and the image inlined as a data URI."""
    payload = base64.b64encode(chart.png).decode("ascii")
    title = escape(chart.title)
    return (
        f'<section class="chart" id="chart-{escape(chart.name)}">\n<h2>{title}</h2>\n'
        f'<img id="img-{escape(chart.name)}" alt="{title}" src="data:image/png;base64,{payload}">\n'
        "</section>"
    )


def _share(count: int, whole: int) -> str:
    """``9,500 (95.0%)``, or the bare count when there is no whole."""
    return f"{count:,} ({percent(count, whole)})" if whole else f"{count:,}"


def _span(span_s: float | None) -> str:
    """The time span; under a second with the precision that shows it is not zero."""
    if span_s is None:
        return "\u2013"
    return f"{span_s:,.1f} s" if span_s >= MIN_RATE_SPAN_S else f"{span_s:.4g} s"


def _rate(summary: Summary) -> str:
    """Results per second, or why there is no rate (a span too short to measure one)."""
    if summary.rate is not None:
        return f"{summary.rate:,.2f}"
    if summary.span_s is None or summary.results < 2:
        return "\u2013"
    return f"\u2013 (all {summary.results:,} within {summary.span_s:.4g} s: too short for a rate)"


def _number(value: float | None, template: str) -> str:
    """The value in the template, or an en dash when there is none."""
    return "\u2013" if value is None else template.format(value)


def _moment(value: datetime | None) -> str:
    """A completion time in UTC to the second, or an en dash."""
    return "\u2013" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")
