"""A real Prometheus for tests, and the PromQL the deploy/ files contain.

`PrometheusServer` runs the ``prometheus`` binary on a free port with a configuration
derived from ``deploy/prometheus/prometheus.yml`` (same jobs and labels, local targets,
1 s intervals) and answers instant queries through the HTTP API. The other helpers read
the dashboard JSON and the alert rules so tests check exactly what ships.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from evalstream_local.processes import ManagedProcess

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
ALERT_RULES = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "evalstream.json"

# Grafana's interval macros, replaced as Grafana would for a 1 s scrape interval.
MACROS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m"}
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")
_METRIC = re.compile(r"(?<![\w:.\"])(evalstream_\w+|vllm:\w+|up)(?![\w:(])")
_LABEL_VALUES = re.compile(r"^label_values\((?:(.*),\s*)?(\w+)\)$", re.DOTALL)


def free_port() -> int:
    """A port nothing listens on now (the OS's choice, released at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def binary(name: str) -> str | None:
    """The path of ``prometheus`` or ``promtool``, or None when not installed."""
    return shutil.which(name)


NEEDS_PROMETHEUS = pytest.mark.skipif(
    binary("prometheus") is None or binary("promtool") is None,
    reason="the prometheus and promtool binaries are not installed "
    "(Debian/Ubuntu: apt-get install prometheus)",
)


def promtool(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """Runs ``promtool`` and returns its outcome (text output)."""
    tool = binary("promtool")
    assert tool is not None
    return subprocess.run(
        [tool, *args],
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# ----- what deploy/ contains ----------------------------------------------------------------


@dataclass(frozen=True)
class PanelQuery:
    """One PromQL expression of the dashboard and the panel it belongs to."""

    panel: str
    ref: str
    expr: str


def load_dashboard(path: Path = DASHBOARD) -> dict[str, Any]:
    """The dashboard JSON."""
    dashboard: dict[str, Any] = json.loads(path.read_text())
    return dashboard


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those nested in collapsed rows included."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def panel_queries(dashboard: Mapping[str, Any]) -> list[PanelQuery]:
    """Every target expression of every panel."""
    return [
        PanelQuery(panel["title"], target["refId"], target["expr"])
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
        if target.get("expr")
    ]


def variable_queries(dashboard: Mapping[str, Any]) -> dict[str, str]:
    """Query variables: name -> ``label_values(...)`` definition."""
    out: dict[str, str] = {}
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            out[variable["name"]] = query["query"] if isinstance(query, dict) else query
    return out


def variables_used(expr: str) -> set[str]:
    """The dashboard variable names ``expr`` refers to (macros excluded)."""
    names = {a or b or c for a, b, c in _VARIABLE.findall(expr)}
    return {n for n in names if not n.startswith("__")}


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """Replaces Grafana macros and variables (``$v``, ``${v}``, ``${v:fmt}``, ``[[v]]``)."""
    for macro, value in MACROS.items():
        expr = expr.replace(macro, value)

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        return values[name] if name in values else match.group(0)

    return _VARIABLE.sub(replace, expr)


def label_values_as_promql(query: str) -> tuple[str, str]:
    """``label_values(selector, label)`` as a PromQL query and the label it lists."""
    match = _LABEL_VALUES.match(query.strip())
    assert match is not None, f"not a label_values() query: {query}"
    selector, label = match.group(1), match.group(2)
    if not selector:
        selector = "{" + label + '!=""}'
    return f"count by ({label}) ({selector})", label


@dataclass(frozen=True)
class AlertRule:
    """One alerting rule of the rules file."""

    name: str
    expr: str
    annotations: dict[str, str]


def alert_rules(path: Path = ALERT_RULES) -> list[AlertRule]:
    """Every alerting rule (recording rules are skipped)."""
    document = yaml.safe_load(path.read_text())
    return [
        AlertRule(rule["alert"], rule["expr"], rule.get("annotations", {}))
        for group in document["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads (evalstream_*, vllm:* and ``up``)."""
    return set(_METRIC.findall(expr))


def local_config(
    scrape_targets: Mapping[str, str],
    target_labels: Mapping[str, Mapping[str, str]],
    prometheus_address: str,
) -> dict[str, Any]:
    """The shipped configuration, pointed at local targets and sped up.

    Jobs keep their names, paths and target labels; service discovery is replaced by one
    static target per job in ``scrape_targets``, other jobs are dropped.
    """
    config: dict[str, Any] = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"] = {
        "scrape_interval": "1s",
        "scrape_timeout": "1s",
        "evaluation_interval": "1s",
    }
    config["rule_files"] = [str(PROMETHEUS_CONFIG.parent / f) for f in config["rule_files"]]
    jobs = []
    for job in config["scrape_configs"]:
        name = job["job_name"]
        if name == "prometheus":
            target = prometheus_address
        elif name in scrape_targets:
            target = scrape_targets[name]
        else:
            continue
        shipped_labels = {
            key: value
            for static in job.get("static_configs", [])
            for key, value in static.get("labels", {}).items()
        }
        labels = {**shipped_labels, **target_labels.get(name, {})}
        job = {k: v for k, v in job.items() if not k.endswith("_sd_configs")}
        job["static_configs"] = [{"targets": [target], "labels": labels}]
        jobs.append(job)
    config["scrape_configs"] = jobs
    return config


# ----- the server -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One element of an instant vector."""

    labels: dict[str, str]
    value: float


class PrometheusServer:
    """A ``prometheus`` process on 127.0.0.1 with its own storage.

    Args:
        config: the configuration document.
        workdir: where the configuration, data and log go.
    """

    def __init__(self, config: Mapping[str, Any], workdir: Path, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
        self._workdir = workdir
        self._process: ManagedProcess | None = None
        self._client = httpx.Client(base_url=self.url, timeout=10.0)

    def start(self, timeout: float = 60.0) -> None:
        """Starts it and waits for ``/-/ready``."""
        path = binary("prometheus")
        assert path is not None
        self._process = ManagedProcess(
            [
                path,
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self._workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            log_path=self._workdir / "prometheus.log",
        )
        self._process.start()
        if not wait_for(self._ready, timeout):
            self.stop()
            raise RuntimeError(f"prometheus not ready; see {self._workdir / 'prometheus.log'}")

    def stop(self) -> None:
        """Stops the process and closes the client."""
        if self._process is not None:
            self._process.stop()
        self._client.close()

    def _ready(self) -> bool:
        assert self._process is not None
        if not self._process.alive():
            raise RuntimeError(f"prometheus exited; see {self._workdir / 'prometheus.log'}")
        try:
            return self._client.get("/-/ready").status_code == 200
        except httpx.TransportError:
            return False

    def _api(self, path: str, **params: str) -> Any:
        response = self._client.get(f"/api/v1/{path}", params=params)
        body = response.json()
        if body.get("status") != "success":
            raise PromQLError(f"{params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[Sample]:
        """An instant query at the current time; raises `PromQLError` on invalid PromQL."""
        data = self._api("query", query=expr)
        if data["resultType"] == "scalar":
            return [Sample({}, float(data["result"][1]))]
        return [Sample(item["metric"], float(item["value"][1])) for item in data["result"]]

    def value(self, expr: str) -> float | None:
        """The single value of ``expr``, or None when it returns nothing."""
        samples = self.query(expr)
        return samples[0].value if samples else None

    def targets(self) -> list[dict[str, Any]]:
        """The active scrape targets and their health."""
        active: list[dict[str, Any]] = self._api("targets")["activeTargets"]
        return active

    def rules(self) -> list[dict[str, Any]]:
        """Every loaded rule with its health, last error and state."""
        groups = self._api("rules")["groups"]
        return [rule for group in groups for rule in group["rules"]]

    def alerts(self) -> dict[str, set[str]]:
        """Alert name -> the states (``pending``, ``firing``) it has now."""
        states: dict[str, set[str]] = {}
        for sample in self.query("ALERTS"):
            states.setdefault(sample.labels["alertname"], set()).add(sample.labels["alertstate"])
        return states


class PromQLError(Exception):
    """Prometheus rejected a query."""


def has_data(samples: list[Sample]) -> bool:
    """At least one sample whose value is a number (a quantile of no observations is NaN)."""
    return any(not math.isnan(s.value) for s in samples)


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.25) -> bool:
    """Polls ``condition`` until it holds or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()
