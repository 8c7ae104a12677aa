"""``evalstream-producer report``: an HTML report of a ``collect`` results file.

`load` reads the SQLite, Parquet or JSONL file, `stats` computes the summary and the time buckets,
`charts` draws each chart as a PNG, `page` writes the self-contained HTML page. `write_report`
runs them in that order and also writes each chart as a PNG file next to the page, in the folder
``<page stem>-files/`` (``report.html`` gets ``report-files/throughput.png`` and so on).

Needs matplotlib (``pip install 'evalstream[report]'``); Parquet input also needs pyarrow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from producer.errors import ReportInputError
from producer.report.charts import (
    Chart,
    latency_chart,
    outcomes_chart,
    scores_chart,
    throughput_chart,
    tokens_chart,
)
from producer.report.load import ReportRow, load_results
from producer.report.page import render_page
from producer.report.stats import Summary, TimeBuckets, outcome_counts, scores_by

# Groups a score chart keeps apart; the rest share one "other" row.
MAX_SCORE_GROUPS = 12


@dataclass(frozen=True, slots=True)
class ReportFiles:
    """What `write_report` wrote.

    Attributes:
        page: The HTML file.
        images: The PNG file of each chart, in page order.
        summary: The numbers of the summary table.
    """

    page: Path
    images: tuple[Path, ...]
    summary: Summary


def build_charts(rows: list[ReportRow]) -> list[Chart]:
    """Every chart of the report, in page order."""
    buckets = TimeBuckets.of(rows)
    return [
        throughput_chart(buckets),
        latency_chart(buckets),
        outcomes_chart(outcome_counts(rows)),
        scores_chart(
            "scores_by_job", "Score distribution per job", scores_by(rows, "job", MAX_SCORE_GROUPS)
        ),
        scores_chart(
            "scores_by_model",
            "Score distribution per model / variant",
            scores_by(rows, "model_variant", MAX_SCORE_GROUPS),
        ),
        tokens_chart(rows),
    ]


def images_folder(page: Path) -> Path:
    """The folder the PNG files of a page go to: ``report.html`` -> ``report-files``."""
    return page.with_name(f"{page.stem}-files")


def write_report(results: str, out: str) -> ReportFiles:
    """Reads a results file and writes the HTML page and the chart PNGs.

    Args:
        results: A ``collect`` output file (``.sqlite``/``.db``, ``.parquet`` or ``.jsonl``).
        out: The HTML file to write; its PNG folder is created beside it.

    Raises:
        ReportInputError: The results file cannot be read as results.
        OSError: The page or an image cannot be written.
    """
    rows = load_results(results)
    summary = Summary.of(rows)
    charts = build_charts(rows)
    page = Path(out)
    folder = images_folder(page)
    folder.mkdir(parents=True, exist_ok=True)
    images = []
    for chart in charts:
        image = folder / f"{chart.name}.png"
        image.write_bytes(chart.png)
        images.append(image)
    page.write_text(render_page(results, summary, charts), encoding="utf-8")
    return ReportFiles(page, tuple(images), summary)


__all__ = ["ReportFiles", "ReportInputError", "build_charts", "images_folder", "write_report"]
