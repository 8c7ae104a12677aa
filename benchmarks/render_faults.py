"""README's fault table, from ``faults.jsonl`` (one record per scenario and run).

The table shows the latest full run: the latest commit, measured on a clean tree, with at least
``MIN_RUNS`` runs of every scenario; per scenario the median and the range over those runs. Where
no full run exists, the latest run of each scenario with its date, and the range over every run
recorded (runs of different commits).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

# A full run: at least this many runs of every scenario from one commit with a clean tree.
MIN_RUNS = 3
# Scenario keys in the order of the table, and what each does (prose, not figures).
SCENARIOS = {
    "worker_kill_9_x5": "worker `kill -9` x5 at seeded moments, replacement started at once",
    "broker_kill_9_restart": "broker `kill -9`, restarted on its data directory",
    "broker_stall_10s": "broker frozen (SIGSTOP) 10 s, longer than the worker's 6 s session",
    "results_topic_unavailable_20s": "results topic missing for 20 s (auto-create off)",
    "engine_hang_10s": "engine hangs for 10 s (worker timeout 3 s)",
    "engine_500s_30s_max_attempts_10": "engine answers 500 for 30 s, `retry.max_attempts` 10",
    "engine_500s_30s_max_attempts_20": "the same with `retry.max_attempts` 20",
    "engine_malformed_30pct": "engine returns malformed JSON for 30% of calls",
    "rebalance_storm": "a worker joins or leaves (SIGTERM) every 2.5 s until the work is done",
    "broker_failover_3_nodes": "three brokers (RF 3, min ISR 2): the leader of a requests and "
    "a results partition `kill -9`ed mid-drain, the worker not restarted",
}


def records(results: Path) -> list[dict[str, Any]]:
    """Every record of ``faults.jsonl``, in the order written."""
    lines = (results / "faults.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _span(values: list[float], digits: int) -> str:
    low, high = min(values), max(values)
    return f"{low:,.{digits}f}" if low == high else f"{low:,.{digits}f} to {high:,.{digits}f}"


def _detail(latest: dict[str, Any]) -> str:
    """The scenario-specific figures of the latest run."""
    outcomes = latest.get("outcomes") or {}
    parts = [
        f"{count:,} {kind.replace('_', ' ')} {what}"
        for kind, what, count in sorted((*k.split(":", 1), n) for k, n in outcomes.items())
    ]
    if "workers" in latest:
        parts.append(f"{latest['changes']} changes, {latest['workers']} workers")
    if "hung_calls" in latest:
        parts.append(f"{latest['hung_calls']} calls hung and retried")
    if "consumed_while_unavailable" in latest:
        parts.append(f"{latest['consumed_while_unavailable']:,} consumed during the outage")
    if "broker_down_s" in latest:
        parts.append(f"broker down {latest['broker_down_s']:.1f} s")
    return "; ".join(parts)


def _when(record: dict[str, Any]) -> str:
    """The run's date, and its commit where the record has one (marked if the tree was dirty)."""
    source = record.get("source") or {}
    commit = f", {source['commit'][:7]}" if source.get("commit") else ""
    dirty = " (DIRTY TREE)" if source.get("dirty") else ""
    return f"{record['at'][:10]}{commit}{dirty}"


def latest_full_run(all_records: list[dict[str, Any]]) -> tuple[str, dict[str, list[Any]]] | None:
    """The latest commit whose clean-tree records hold ``MIN_RUNS`` runs of every scenario."""
    by_commit: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for record in all_records:
        source = record.get("source") or {}
        if source.get("commit") and not source.get("dirty"):
            commit = source["commit"]
            runs = by_commit.pop(commit, {})  # re-inserted last: the order is of latest records
            by_commit[commit] = runs
            runs.setdefault(record["scenario"], []).append(record)
    for commit, runs in reversed(list(by_commit.items())):
        if all(len(runs.get(key, [])) >= MIN_RUNS for key in SCENARIOS):
            return commit, runs
    return None


def _median_span(values: list[float], digits: int) -> str:
    middle = statistics.median(values)
    return f"{middle:,.{digits}f} ({_span(values, digits)})"


def _full_run_table(commit: str, runs: dict[str, list[dict[str, Any]]]) -> str:
    """Median and range of every scenario's runs at one commit."""
    dates = sorted(r["at"] for done in runs.values() for r in done)
    counts = sorted({len(runs[key]) for key in SCENARIOS})
    lines = [
        f"{'/'.join(map(str, counts))} runs of every scenario at commit {commit[:7]}, "
        f"{dates[0][:16].replace('T', ' ')} to {dates[-1][:16].replace('T', ' ')} UTC.",
        "",
        "| scenario | runs | requests | lost | duplicates: median (range) | "
        "recovery s: median (range) | latest run's figures |",
        "|---|---:|---:|---:|---|---|---|",
    ]
    for key, label in SCENARIOS.items():
        done = runs[key]
        lines.append(
            f"| {label} | {len(done)} | {done[-1]['requests']:,} | "
            f"{sum(r['lost'] for r in done)} | "
            f"{_median_span([r['duplicates'] for r in done], 0)} | "
            f"{_median_span([r['recovery_s'] for r in done], 2)} | {_detail(done[-1])} |"
        )
    return "\n".join(lines)


def table(results: Path) -> str:
    """The Markdown table: the latest full run, or else the latest run of each scenario."""
    everything = records(results)
    full = latest_full_run(everything)
    if full is not None:
        return _full_run_table(*full)
    runs: dict[str, list[dict[str, Any]]] = {}
    for record in everything:
        runs.setdefault(record["scenario"], []).append(record)
    lines = [
        "| scenario | latest run | requests | lost | duplicates | recovery s | "
        "runs: duplicates, recovery s | latest run's figures |",
        "|---|---|---:|---:|---:|---:|---|---|",
    ]
    for key, label in SCENARIOS.items():
        if key not in runs:
            continue
        done = runs[key]
        latest = done[-1]
        spread = (
            f"{len(done)}: {_span([r['duplicates'] for r in done], 0)}, "
            f"{_span([r['recovery_s'] for r in done], 2)}"
        )
        lines.append(
            f"| {label} | {_when(latest)} | {latest['requests']:,} | {latest['lost']} | "
            f"{latest['duplicates']:,} | {latest['recovery_s']:.2f} | {spread} | "
            f"{_detail(latest)} |"
        )
    return "\n".join(lines)
