"""The shipped Prometheus config and alert rules, checked by ``promtool``.

``promtool`` checks the config (``deploy/prometheus/prometheus.yml``) and the alert rules
(``deploy/prometheus/alerts.yml``); its rule unit tests, on synthetic series, show that each
alert fires on its condition only. Every alert tells what to check and do. The same rules
against a real Prometheus scraping real traffic: test_observability_dashboard.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.promql import (
    ALERT_RULES,
    NEEDS_PROMETHEUS,
    PROMETHEUS_CONFIG,
    alert_rules,
    promtool,
)

pytestmark = [NEEDS_PROMETHEUS, pytest.mark.timeout(60)]


def test_promtool_accepts_the_configuration() -> None:
    result = promtool("check", "config", str(PROMETHEUS_CONFIG))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout + result.stderr


def test_promtool_accepts_the_rules() -> None:
    result = promtool("check", "rules", str(ALERT_RULES))

    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_tells_what_to_check_and_do() -> None:
    for rule in alert_rules():
        assert {"summary", "description", "runbook"} <= set(rule.annotations), rule.name
        assert len(rule.annotations["runbook"]) > 100, rule.name


def test_alerts_fire_when_they_should(tmp_path: Path) -> None:
    """``promtool test rules`` on synthetic series: each alert fires on its condition only.

    The annotations are stripped from a copy of the rules (their text is checked above and
    their templates by ``promtool check rules``), so the expectations name labels only.
    """
    rules = yaml.safe_load(ALERT_RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules))
    tests = {"rule_files": ["alerts.yml"], "evaluation_interval": "1m", "tests": RULE_TESTS}
    (tmp_path / "alerts_test.yml").write_text(yaml.safe_dump(tests, sort_keys=False))

    result = promtool("test", "rules", str(tmp_path / "alerts_test.yml"))

    assert result.returncode == 0, result.stdout + result.stderr
    tested = {t["alertname"] for group in RULE_TESTS for t in group["alert_rule_test"]}
    assert tested == {rule.name for rule in alert_rules()}


def _series(metric: str, worker: str | None, values: str, **labels: str) -> dict[str, str]:
    """One input series of a rule test; a worker's series carry job, worker and gpu."""
    ids = {"job": "evalstream-worker", "worker": worker, "gpu": "0"} if worker else {}
    selector = ",".join(f'{k}="{v}"' for k, v in {**ids, **labels}.items())
    return {"series": f"{metric}{{{selector}}}", "values": values}


def _alert(name: str, at: str, *expected: dict[str, str]) -> dict[str, Any]:
    return {
        "eval_time": at,
        "alertname": name,
        "exp_alerts": [{"exp_labels": labels} for labels in expected],
    }


LAG = "evalstream_consumer_lag_messages"
COMPLETED = "evalstream_completed_total"
DEAD = "evalstream_dead_lettered_total"
JOB = {"job": "evalstream-worker"}
RULE_TESTS: list[dict[str, Any]] = [
    {  # w0 stuck with a backlog; w1 progressing; w2 never completed anything; w3 only DLQs.
        "interval": "1m",
        "input_series": [
            *(_series(LAG, w, "500x30", topic="r", partition="0") for w in ("w0", "w1", "w2")),
            _series(LAG, "w3", "500x30", topic="r", partition="0"),
            _series(COMPLETED, "w0", "100x30", status="ok", model="m", variant=""),
            _series(COMPLETED, "w1", "0+10x30", status="ok", model="m", variant=""),
            _series(DEAD, "w3", "0+10x30", reason="invalid_json"),
        ],
        "alert_rule_test": [
            _alert("EvalstreamNoProgress", "8m"),
            _alert(
                "EvalstreamNoProgress",
                "20m",
                {**JOB, "worker": "w0", "severity": "critical"},
                {**JOB, "worker": "w2", "severity": "critical"},
            ),
        ],
    },
    {  # topic "up" grows, topic "down" drains.
        "interval": "1m",
        "input_series": [
            _series(LAG, "w0", "0+10x120", topic="up", partition="0"),
            _series(LAG, "w0", "5000-10x120", topic="down", partition="0"),
        ],
        "alert_rule_test": [
            _alert("EvalstreamLagGrowing", "20m"),
            _alert("EvalstreamLagGrowing", "60m", {**JOB, "topic": "up", "severity": "warning"}),
        ],
    },
    {  # model a: 10% errors; model b: 1%.
        "interval": "1m",
        "input_series": [
            _series(COMPLETED, "w0", "0+90x30", status="ok", model="a", variant=""),
            _series(COMPLETED, "w0", "0+10x30", status="error", model="a", variant=""),
            _series(COMPLETED, "w0", "0+99x30", status="ok", model="b", variant=""),
            _series(COMPLETED, "w0", "0+1x30", status="error", model="b", variant=""),
        ],
        "alert_rule_test": [
            _alert("EvalstreamHighErrorRate", "20m", {**JOB, "model": "a", "severity": "warning"}),
        ],
    },
    {  # 5% invalid_json dead letters; 0.5% too_large.
        "interval": "1m",
        "input_series": [
            _series("evalstream_consumed_total", "w0", "0+100x30"),
            _series(DEAD, "w0", "0+5x30", reason="invalid_json"),
            _series(DEAD, "w0", "0+0.5x30", reason="too_large"),
        ],
        "alert_rule_test": [
            _alert(
                "EvalstreamDeadLetters",
                "20m",
                {**JOB, "reason": "invalid_json", "severity": "warning"},
            ),
        ],
    },
    {  # w0 engine fails its health check; w1 circuit open; w2 healthy.
        "interval": "1m",
        "input_series": [
            _series("evalstream_engine_up", "w0", "0x10"),
            _series("evalstream_circuit_open", "w0", "0x10"),
            _series("evalstream_engine_up", "w1", "1x10"),
            _series("evalstream_circuit_open", "w1", "1x10"),
            _series("evalstream_engine_up", "w2", "1x10"),
            _series("evalstream_circuit_open", "w2", "0x10"),
        ],
        "alert_rule_test": [
            _alert("EvalstreamEngineDown", "1m"),
            _alert(
                "EvalstreamEngineDown",
                "5m",
                {**JOB, "worker": "w0", "gpu": "0", "severity": "critical"},
                {**JOB, "worker": "w1", "gpu": "0", "severity": "critical"},
            ),
        ],
    },
    {  # target a down, target b up.
        "interval": "1m",
        "input_series": [
            _series("up", None, "0x10", job="evalstream-worker", instance="a:9400"),
            _series("up", None, "1x10", job="evalstream-worker", instance="b:9400"),
        ],
        "alert_rule_test": [
            _alert(
                "EvalstreamWorkerDown", "5m", {**JOB, "instance": "a:9400", "severity": "critical"}
            ),
            _alert("EvalstreamNoWorkers", "10m"),
        ],
    },
    {  # no worker target at all.
        "interval": "1m",
        "input_series": [_series("up", None, "1x10", job="prometheus", instance="p:9090")],
        "alert_rule_test": [
            _alert("EvalstreamNoWorkers", "10m", {**JOB, "severity": "critical"}),
        ],
    },
    {  # every request of the last 10 minutes took 30-60 minutes.
        "interval": "1m",
        "input_series": [
            _series("evalstream_end_to_end_latency_seconds_bucket", "w0", values, le=le)
            for le, values in (
                ("600.0", "0x40"),
                ("1800.0", "0x40"),
                ("3600.0", "0+10x40"),
                ("+Inf", "0+10x40"),
            )
        ],
        "alert_rule_test": [
            _alert("EvalstreamEndToEndLatencyHigh", "10m"),
            _alert("EvalstreamEndToEndLatencyHigh", "30m", {**JOB, "severity": "warning"}),
        ],
    },
]
