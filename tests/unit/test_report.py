"""``evalstream-producer report``: results files written by the real sinks, read back as a page."""

from __future__ import annotations

import base64
import sqlite3
import struct
from collections.abc import Sequence
from contextlib import closing
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from consumer.schemas import (
    Evaluation,
    EvaluationResult,
    Recommendation,
    ResultError,
    SourceRef,
    Timings,
    Usage,
)
from producer.__main__ import main
from producer.report import build_charts, images_folder, write_report
from producer.report.load import ReportRow, load_results
from producer.report.page import LATENCY_LABEL, summary_rows
from producer.report.stats import (
    Summary,
    TimeBuckets,
    bucket_width,
    outcome_counts,
    percent,
    percentile,
    scores_by,
)
from producer.result_view import ResultView
from producer.sinks import open_sink

pytestmark = pytest.mark.timeout(60)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
CHARTS = {"throughput", "latency", "outcomes", "scores_by_job", "scores_by_model", "tokens"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# 60 results over 30 s: 3 jobs, 3 model/variant routes, 6 errors with 2 reasons.
COUNT = 60
ERRORS = {7: "timeout", 17: "timeout", 27: "timeout", 37: "timeout", 47: "invalid_output"}
ERRORS[57] = "invalid_output"
ROUTES = (("gemma3-1b", "a"), ("gemma3-1b", "b"), ("qwen2.5-7b", None))


def make_result(number: int, *, failed: bool = False) -> EvaluationResult:
    """Result ``req-NNN``: deterministic job, route, latency, tokens and completion time."""
    reason = ERRORS.get(number) if not failed else "engine_error"
    model, variant = ROUTES[number % 3]
    evaluation = Evaluation(
        score=20 + number,
        recommendation=Recommendation.MAYBE,
        strengths=["Python services"],
        concerns=["No on-call duty"],
        summary="Fits the role well overall.",
    )
    return EvaluationResult(
        id=f"req-{number:03d}",
        status="error" if reason else "ok",
        evaluation=None if reason else evaluation,
        error=ResultError(reason=reason, message="no reply") if reason else None,
        model=model,
        backend="openai",
        variant=variant,
        prompt_version="v1",
        usage=Usage(prompt_tokens=1000 + number, completion_tokens=0 if reason else 200),
        timings=Timings(queued_s=0.1, inference_s=0.5, end_to_end_s=1.0 + number / 10),
        attempts=1,
        worker_id="worker-1",
        source=SourceRef(topic="evalstream.requests", partition=0, offset=number),
        metadata={"source": "test", "job_id": f"job-{number % 3 + 1}"},
        completed_at=T0 + timedelta(seconds=number / 2),
    )


def write_results(path: Path, results: Sequence[EvaluationResult]) -> None:
    """Stores results with the sink ``collect`` picks for the path's suffix."""
    sink = open_sink(str(path))
    for result in results:
        sink.write(result, result.model_dump_json().encode(), ResultView.of(result))
    sink.close()


class _Page(HTMLParser):
    """The images and summary table cells of a report page."""

    def __init__(self) -> None:
        super().__init__()
        self.images: dict[str, dict[str, str]] = {}
        self.sources: list[str] = []
        self.cells: list[str] = []
        self._in_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {key: value or "" for key, value in attrs}
        if "src" in values or "href" in values:
            self.sources.append(values.get("src") or values.get("href", ""))
        if tag == "img":
            self.images[values["id"].removeprefix("img-")] = values
        self._in_cell = tag in {"th", "td"}

    def handle_data(self, data: str) -> None:
        if self._in_cell:
            self.cells.append(data)
            self._in_cell = False

    def summary(self) -> dict[str, str]:
        return dict(zip(self.cells[::2], self.cells[1::2], strict=True))


def read_page(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    assert data.startswith(PNG_SIGNATURE)
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.parametrize("suffix", [".sqlite", ".parquet", ".jsonl"])
def test_report_has_every_chart_inline_and_as_png_files(tmp_path: Path, suffix: str) -> None:
    results = tmp_path / f"results{suffix}"
    write_results(results, [make_result(number) for number in range(COUNT)])
    out = tmp_path / "out" / "report.html"

    assert main(["report", str(results), "--out", str(out)]) == 0

    page = read_page(out)
    assert set(page.images) == CHARTS
    for name, image in page.images.items():
        prefix = "data:image/png;base64,"
        assert image["src"].startswith(prefix)
        data = base64.b64decode(image["src"].removeprefix(prefix), validate=True)
        width, height = png_size(data)
        assert width >= 600
        assert height >= 150
        assert (tmp_path / "out" / "report-files" / f"{name}.png").read_bytes() == data
        assert image["alt"]
    # Self-contained: nothing the page refers to lives outside it.
    assert all(source.startswith("data:") for source in page.sources)
    assert "<script" not in out.read_text(encoding="utf-8")


def test_summary_table_states_what_the_input_implies(tmp_path: Path) -> None:
    results = tmp_path / "results.sqlite"
    write_results(results, [make_result(number) for number in range(COUNT)])
    out = tmp_path / "report.html"
    assert main(["report", str(results), "--out", str(out)]) == 0

    summary = read_page(out).summary()
    latencies = sorted(1.0 + number / 10 for number in range(COUNT))
    assert summary["Results"] == "60"
    assert summary["OK"] == "54 (90.0%)"
    assert summary["Time span"] == "29.5 s"  # the last result completes at 59 / 2 s
    assert summary["Results per second"] == f"{60 / 29.5:.2f}"
    assert summary[f"{LATENCY_LABEL} p50"] == f"{(latencies[29] + latencies[30]) / 2:.3f} s"
    assert summary["First result"] == "2025-03-01 12:00:00 UTC"
    assert summary["Prompt tokens per result (mean)"] == f"{1000 + 59 / 2:,.1f}"


def test_loaded_rows_carry_job_route_and_reasons(tmp_path: Path) -> None:
    results = tmp_path / "results.parquet"
    write_results(results, [make_result(number) for number in range(COUNT)])
    rows = load_results(str(results))

    assert outcome_counts(rows) == {"ok": 54, "timeout": 4, "invalid_output": 2}
    by_job = dict(scores_by(rows, "job", limit=12))
    assert sorted(by_job) == ["job-1", "job-2", "job-3"]
    assert sum(len(scores) for scores in by_job.values()) == 54
    by_route = dict(scores_by(rows, "model_variant", limit=12))
    assert sorted(by_route) == ["gemma3-1b / a", "gemma3-1b / b", "qwen2.5-7b"]


def test_all_failed_input_draws_placeholders_instead_of_failing(tmp_path: Path) -> None:
    results = tmp_path / "results.db"
    write_results(results, [make_result(number, failed=True) for number in range(10)])
    files = write_report(str(results), str(tmp_path / "failed.html"))

    charts = {chart.name: chart for chart in build_charts(load_results(str(results)))}
    assert not charts["scores_by_job"].has_data
    assert not charts["scores_by_model"].has_data
    assert charts["outcomes"].has_data
    assert files.summary.ok_share == 0.0
    assert {path.name for path in files.images} == {f"{name}.png" for name in CHARTS}
    assert images_folder(files.page) == tmp_path / "failed-files"


def test_empty_results_database_gives_a_page_of_placeholders(tmp_path: Path) -> None:
    results = tmp_path / "results.sqlite"
    write_results(results, [])
    assert main(["report", str(results), "--out", str(tmp_path / "r.html")]) == 0
    assert not any(chart.has_data for chart in build_charts([]))
    assert read_page(tmp_path / "r.html").summary()["Results"] == "0"


def _not_results_sqlite(path: Path) -> None:
    with closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE other (x INTEGER)")


@pytest.mark.parametrize(
    ("name", "prepare", "expected"),
    [
        ("absent.sqlite", None, "no such file"),
        ("results.csv", lambda p: p.write_text("a,b\n"), "cannot tell the format"),
        ("other.sqlite", _not_results_sqlite, "not a results database"),
        ("text.sqlite", lambda p: p.write_text("hello\n" * 200), "not a results database"),
        ("junk.parquet", lambda p: p.write_bytes(b"PAR1 junk"), "not a results file"),
    ],
)
def test_bad_input_is_one_error_line_naming_the_file_and_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    prepare: object,
    expected: str,
) -> None:
    path = tmp_path / name
    if callable(prepare):
        prepare(path)
    out = tmp_path / "report.html"

    assert main(["report", str(path), "--out", str(out)]) == 2

    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert error.startswith("error: ")
    assert str(path) in error
    assert expected in error
    assert not out.exists()


@pytest.fixture
def rows(tmp_path: Path) -> list[ReportRow]:
    """The standard 60 results, stored in SQLite and loaded back."""
    results = tmp_path / "rows.sqlite"
    write_results(results, [make_result(number) for number in range(COUNT)])
    return load_results(str(results))


def test_time_buckets_count_results_per_round_width(rows: list[ReportRow]) -> None:
    buckets = TimeBuckets.of(rows)
    assert buckets is not None
    assert buckets.width_s == 1.0  # a 29.5 s span fits 60 one-second buckets
    # 30 full seconds would leave a half-second last bucket: it joins the one before.
    assert len(buckets.members) == 29
    assert buckets.edges_s[-1] == 29.5
    assert [len(group) for group in buckets.members] == [2] * 28 + [4]
    assert buckets.rates() == [2.0] * 28 + [4 / 1.5]
    assert bucket_width(29.5) == 1.0
    assert bucket_width(3600) == 60.0
    assert bucket_width(10**9) == 86400.0
    assert TimeBuckets.of([]) is None
    lone = TimeBuckets.of(rows[:1])
    assert lone is not None
    assert lone.rates() == [1.0]  # one result, no span: one bucket of nominal width


def test_score_groups_beyond_the_limit_share_one_row(rows: list[ReportRow]) -> None:
    groups = scores_by(rows, "request_id", limit=5)
    assert len(groups) == 5
    label, scores = groups[-1]
    assert label == "other (50)"
    assert len(scores) == 50


def test_percentile_interpolates_and_summary_handles_nothing() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([5.0], 0.99) == 5.0
    assert percentile([], 0.5) is None
    empty = Summary.of([])
    assert (empty.results, empty.ok_share, empty.span_s, empty.rate) == (0, None, None, None)


def test_the_jsonl_of_collect_gives_the_same_summary_as_sqlite(tmp_path: Path) -> None:
    results = [make_result(number) for number in range(COUNT)]
    write_results(tmp_path / "r.sqlite", results)
    write_results(tmp_path / "r.jsonl", results)
    assert Summary.of(load_results(str(tmp_path / "r.jsonl"))) == Summary.of(
        load_results(str(tmp_path / "r.sqlite"))
    )


def test_a_jsonl_line_that_is_no_result_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(make_result(1).model_dump_json() + "\n" + '{"id": "x"}\n')
    assert main(["report", str(path), "--out", str(tmp_path / "r.html")]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {path}: line 2 is not a result of collect (")
    assert error.count("\n") == 1


def test_a_run_finished_within_milliseconds_has_no_rate_and_one_full_bucket(
    tmp_path: Path,
) -> None:
    # Every request expired: the worker answered all five within 1.2 ms of each other.
    results = [
        make_result(number).model_copy(
            update={"completed_at": T0 + timedelta(microseconds=300 * number)}
        )
        for number in range(5)
    ]
    write_results(tmp_path / "expired.sqlite", results)
    rows = load_results(str(tmp_path / "expired.sqlite"))
    summary = Summary.of(rows)
    assert summary.rate is None
    out = tmp_path / "r.html"
    assert main(["report", str(tmp_path / "expired.sqlite"), "--out", str(out)]) == 0
    table = read_page(out).summary()
    assert table["Results per second"] == "\u2013 (all 5 within 0.0012 s: too short for a rate)"
    assert table["Time span"] == "0.0012 s"
    buckets = TimeBuckets.of(rows)
    assert buckets is not None
    assert (buckets.width_s, buckets.edges_s) == (1.0, (0.0, 1.0))  # the axis the title names
    assert buckets.rates() == [5.0]


def test_a_share_short_of_the_whole_never_shows_100_percent() -> None:
    assert percent(5_457, 5_459) == "99.9%"  # 2 errors: 99.96% would round to 100.0%
    assert percent(2, 5_459) == "0.1%"
    assert (percent(5, 5), percent(0, 5), percent(54, 60)) == ("100.0%", "0.0%", "90.0%")
    rows = [
        ReportRow(f"r{n}", "error" if n < 2 else "ok", None, None, None, None, None, None, None,
                  None, None)
        for n in range(5_459)
    ]  # fmt: skip
    assert Summary.of(rows).ok == 5_457
    assert dict(summary_rows(Summary.of(rows)))["OK"] == "5,457 (99.9%)"
