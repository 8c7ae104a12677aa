"""BENCHMARKS §3 and §5's tables, from ``cpu_overhead.json`` (one invocation, every case)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_LABELS = {
    "passthrough": "pass-through baseline: consume → produce, no engine call",
    "fixed-256": "evalstream worker, fixed window 256",
    "adaptive": "evalstream worker, adaptive window",
    "fixed-256-eos": "evalstream worker, fixed window 256, exactly-once",
}


def _cases(results: Path) -> dict[str, dict[str, Any]]:
    data = json.loads((results / "cpu_overhead.json").read_text(encoding="utf-8"))
    return {case["case"]: case for case in data["cases"]}


def overhead_table(results: Path) -> str:
    """§3: throughput, idle share and CPU per request of each case."""
    lines = [
        "| run (same invocation) | req/s first→last | steady 10-90% | idle | "
        "worker CPU µs/request | broker µs/request |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, label in _LABELS.items():
        case = _cases(results)[key]
        rates, cpu = case["requests_per_s"], case["cpu"]["us_per_request"]
        idle = f"{rates['idle_100ms_share']:.0%}"
        if key == "fixed-256-eos":
            idle = f"({idle})"  # results appear at commit times: idle by construction
        lines.append(
            f"| {label} | {rates['first_to_last']:,.0f} | {rates['steady_10_90']:,.0f} | {idle} "
            f"| {cpu['worker']:,.0f} | {cpu['broker']:,.0f} |"
        )
    return "\n".join(lines)


def exactly_once_table(results: Path) -> str:
    """§5: exactly-once against at-least-once at the same fixed window, same invocation."""
    cases = _cases(results)
    once, eos = cases["fixed-256"], cases["fixed-256-eos"]
    rows: list[tuple[str, tuple[str, str]]] = [
        ("requests/s, first → last result", ("requests_per_s", "first_to_last")),
        ("requests/s, 10% → 90% of the results", ("requests_per_s", "steady_10_90")),
        ("worker CPU µs/request", ("cpu", "us_per_request")),
    ]
    lines = [
        "| | at-least-once (fixed 256) | exactly-once (fixed 256) | ratio |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, (group, field) in rows:
        a, b = _value(once, group, field), _value(eos, group, field)
        lines.append(f"| {label} | {a:,.0f} | {b:,.0f} | {b / a:.2f} |")
    return "\n".join(lines)


def _value(case: dict[str, Any], group: str, field: str) -> float:
    """One figure of a case; the CPU figure is the worker's."""
    value = case[group][field]
    return float(value["worker"] if isinstance(value, dict) else value)


_CLIENTS = {
    "httpx": "httpx (its own pool)",
    "aiohttp": "aiohttp",
    "httpx over aiohttp": (
        "httpx API over aiohttp's pool (`httpx-aiohttp`, what the worker uses now)"
    ),
}


def http_clients_table(results: Path) -> str:
    """The HTTP clients side by side (``http_clients.json``)."""
    data = json.loads((results / "http_clients.json").read_text(encoding="utf-8"))
    levels = sorted(data["by_concurrency"], key=int)
    header = " | ".join(f"{c} concurrent: req/s, CPU µs/call" for c in levels)
    lines = [f"| HTTP client | {header} |", "| --- |" + " ---: |" * len(levels)]
    for key, label in _CLIENTS.items():
        cells = [data["by_concurrency"][c][key] for c in levels]
        figures = " | ".join(
            f"{cell['requests_per_s']:,.0f}, {cell['cpu_us_per_call']:,.0f}" for cell in cells
        )
        lines.append(f"| {label} | {figures} |")
    if "machine" not in data:
        lines += ["", "(the raw file records no commit or date: it predates provenance)"]
    return "\n".join(lines)


def real_replies_table(results: Path) -> str:
    """Section 8: SmolLM2-135M's replies under `eval-v3` on llama-server: valid, and useful?"""
    data = json.loads((results / "real_replies_cpu_v3.json").read_text())
    s, useful = data["summary"], data["summary"]["usefulness"]
    source = data["machine"]["source"]
    return (
        "| prompt | commit | results | ok share | useful share | distinct scores | "
        "top score's share | tokens per reply (median / max) | engine calls per result |\n"
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
        f"| `{data['prompt_template']}` | {source['commit'][:7]}"
        f"{'' if not source['dirty'] else ' (dirty)'} | {s['results']} | "
        f"{s['ok_share_of_results']:.3f} | {useful['useful_share']:.3f} | "
        f"{useful['distinct_scores']} | {useful['top_score_share']:.2f} | "
        f"{s['completion_tokens']['p50']:.0f} / {s['completion_tokens']['max']:.0f} | "
        f"{s['engine_calls_per_result']:.2f} |"
    )
