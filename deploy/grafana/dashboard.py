"""The evalstream Grafana dashboard, built with Grafana's typed SDK and written as JSON.

``python -m deploy.grafana.dashboard`` writes ``deploy/grafana/dashboards/evalstream.json``,
which Grafana provisions; ``--check`` exits 1, with a diff, where the committed file
differs from what this code builds (``make lint`` runs it). Edit the code, not the JSON.

Grafana adds the built-in "Annotations & Alerts" annotation to a dashboard without one, so
the code leaves it out. Panel ids follow the layout, top to bottom.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from grafana_foundation_sdk.builders.dashboard import (
    Dashboard,
    DatasourceVariable,
    QueryVariable,
    Row,
)
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model

from deploy.grafana import health, traffic
from deploy.grafana.panels import DATASOURCE, Panel

ROOT = Path(__file__).resolve().parents[2]
JSON_PATH = Path("deploy/grafana/dashboards/evalstream.json")
UID = "evalstream"
# The JSON model version the panels are written for (Grafana 10.3 to 11).
SCHEMA_VERSION = 39

ROWS: tuple[tuple[str, Callable[[], list[Panel]]], ...] = (
    ("Overview", traffic.overview),
    ("Latency", traffic.latency),
    ("Window & backpressure", traffic.window),
    ("Errors", health.errors),
    ("Tokens", traffic.tokens),
    ("Engine", health.engine),
    ("GPU", health.gpu),
    ("Per worker", traffic.per_worker),
    ("Per model", traffic.per_model),
)
# Query variables: name, label, description, label_values() query, multi-select.
_VARIABLES = (
    ("job", "Job", "Prometheus scrape job of the workers.",
     "label_values(evalstream_build_info, job)", False),
    ("worker", "Worker", "",
     'label_values(evalstream_build_info{job=~"$job"}, worker)', True),
    ("gpu", "GPU", "GPU index of the workers (All also matches workers without --gpu).",
     'label_values(evalstream_build_info{job=~"$job",worker=~"$worker"}, gpu)', True),
    ("model", "Model", "Routed model; on vLLM panels it selects the served model name.",
     'label_values(evalstream_completed_total{job=~"$job",worker=~"$worker"}, model)', True),
)  # fmt: skip


def variables() -> list[Builder[model.VariableModel]]:
    """The data source, then job, worker, GPU and model (All matches any value, ``.*``)."""
    source = (
        DatasourceVariable("datasource")
        .label("Data source")
        .type("prometheus")
        .current(model.VariableOption(selected=False, text="Prometheus", value="prometheus"))
    )
    out: list[Builder[model.VariableModel]] = [source]
    for name, label, description, values, multi in _VARIABLES:
        query = {
            "query": values,
            "refId": "PrometheusVariableQueryEditor-VariableQuery",
            "qryType": 1,
        }
        default = (
            model.VariableOption(selected=True, text=["All"], value=["$__all"])
            if multi
            else model.VariableOption(
                selected=True, text="evalstream-worker", value="evalstream-worker"
            )
        )
        variable = (
            QueryVariable(name)
            .label(label)
            .datasource(DATASOURCE)
            .query(query)
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(model.VariableSort.ALPHABETICAL_ASC)
            .multi(multi)
            .include_all(True)
            .all_value(".*")
            .current(default)
        )
        out.append(variable.description(description) if description else variable)
    return out


def build() -> model.Dashboard:
    """The dashboard: its settings, variables, then each row and its panels."""
    builder = (
        Dashboard("evalstream")
        .uid(UID)
        .description(
            "Kafka to LLM evaluation workers: throughput, backlog, latency, backpressure, "
            "errors, tokens, engine and GPU."
        )
        .tags(["evalstream", "kafka", "vllm"])
        .timezone("browser")
        .editable()
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .refresh("30s")
        .time("now-1h", "now")
        .fiscal_year_start_month(0)
        .live_now(False)
        .version(1)
        .variables(variables())
    )
    for title, panels in ROWS:
        builder.with_row(Row(title))
        for panel in panels():
            builder.with_panel(panel)
    board = builder.build()
    board.schema_version = SCHEMA_VERSION
    for number, built in enumerate(board.panels or [], start=1):
        built.id_val = number
    return board


def render() -> str:
    """The dashboard JSON: keys sorted, indented by 2, with a final newline."""
    return json.dumps(build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def main(argv: Sequence[str] | None = None, root: Path = ROOT) -> int:
    """Writes (or with ``--check`` compares) the dashboard JSON under ``root``."""
    parser = argparse.ArgumentParser(prog="python -m deploy.grafana.dashboard", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail where the JSON differs")
    args = parser.parse_args(argv)
    path, after = root / JSON_PATH, render()
    before = path.read_text(encoding="utf-8") if path.exists() else ""
    if after == before:
        return 0
    if not args.check:
        path.write_text(after, encoding="utf-8")
        print(f"wrote {JSON_PATH}")
        return 0
    diff = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        f"{JSON_PATH} (committed)",
        f"{JSON_PATH} (built by deploy/grafana)",
    )
    sys.stdout.writelines(diff)
    print(
        f"{JSON_PATH} differs from the dashboard code: run python -m deploy.grafana.dashboard",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
