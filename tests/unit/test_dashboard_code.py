"""The Grafana dashboard is built from code: the committed JSON is what the code builds,
and every metric a panel or variable reads is one the worker exports."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from consumer.gpu_metrics import GpuCollector
from consumer.metrics import Metrics
from deploy.grafana import dashboard
from tests.integration.promql import (
    DASHBOARD,
    load_dashboard,
    metric_names,
    panel_queries,
    panels,
    variable_queries,
)

# How a family's samples are named: counters end _total, histograms have three series.
_SUFFIXES = ("", "_total", "_bucket", "_sum", "_count")


def catalogue() -> set[str]:
    """Every metric family a worker exports: the catalogue, Kafka statistics and NVML's."""
    registry = CollectorRegistry()
    Metrics(registry, "w0", "0")
    families = {family.name for family in registry.collect()}
    return families | {family.name for family in GpuCollector("w0", None).describe()}


def family(sample: str, families: set[str]) -> str | None:
    """The family a sample name belongs to, or None."""
    return next((f for f in families if sample in {f + s for s in _SUFFIXES}), None)


def read_by_panels() -> set[str]:
    """The evalstream metric names the dashboard's panel queries read."""
    names = {name for q in panel_queries(load_dashboard()) for name in metric_names(q.expr)}
    return {name for name in names if name.startswith("evalstream_")}


def test_the_committed_json_is_what_the_code_builds() -> None:
    assert DASHBOARD.read_text(encoding="utf-8") == dashboard.render(), (
        f"{DASHBOARD} differs from deploy/grafana: run python -m deploy.grafana.dashboard"
    )


def test_check_names_the_file_when_the_json_differs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / dashboard.JSON_PATH
    path.parent.mkdir(parents=True)
    path.write_text(dashboard.render().replace('"Backlog"', '"Backlog (edited)"'))

    assert dashboard.main(["--check"], root=tmp_path) == 1
    assert "deploy/grafana/dashboards/evalstream.json differs" in capsys.readouterr().err

    assert dashboard.main([], root=tmp_path) == 0
    assert dashboard.main(["--check"], root=tmp_path) == 0


def test_every_metric_the_dashboard_reads_is_in_the_catalogue() -> None:
    board = load_dashboard()
    variables = {n for q in variable_queries(board).values() for n in metric_names(q)}
    read, families = read_by_panels() | variables, catalogue()

    unknown = {name for name in read if family(name, families) is None}
    assert read
    assert not unknown, f"not exported by the worker: {sorted(unknown)}"


def test_every_catalogue_metric_has_a_panel() -> None:
    families = catalogue()
    shown = {family(name, families) for name in read_by_panels()}

    assert families - shown == set(), "metrics without a panel"


def test_ids_are_unique_and_follow_the_layout() -> None:
    ids = [panel["id"] for panel in panels(load_dashboard())]

    assert ids == list(range(1, len(ids) + 1))
