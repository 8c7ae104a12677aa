"""Ollama and vLLM side by side on the production path (README "(d) Ollama with CUDA").

The Ollama runs are the e2e runs named ``ollama-<mode>-p<slots>``: ``mode`` ``adaptive`` (the
worker's defaults) or ``fixed<N>`` (a fixed window of N), ``slots`` the server's
``OLLAMA_NUM_PARALLEL``. ``ollama-fixed8-p8`` is the prototype's pattern; the best fixed run is
Ollama's ceiling (its best fixed concurrency); vLLM's are ``adaptive`` (end to end) and the
offline schema run. Rates are steady (10-90% of the results) where there are enough results.
"""

from __future__ import annotations

import re
from typing import Any

PROJECT_REQUESTS = 170_000
PROTOTYPE = "ollama-fixed8-p8"
_NAME = re.compile(r"ollama-(adaptive|fixed(\d+))-p(\d+)")


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def _fmt(value: Any, digits: int = 2) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return "-" if value is None else str(value)


def run_figures(entry: dict[str, Any]) -> dict[str, Any]:
    """Results/s, ok share, latency and the 170,000 projection of one e2e run."""
    steady = entry.get("rps_steady_10_90") or entry.get("rps_from_start")
    ok_share = entry.get("ok_share")
    latency = (entry.get("latency_s") or {}).get("end_to_end_s") or {}
    return {
        "results": entry.get("results"),
        "results_per_s": steady,
        "results_per_s_from_start": entry.get("rps_from_start"),
        "ok_share": ok_share,
        "ok_per_s": steady * ok_share if steady and ok_share is not None else None,
        "latency_p50_s": latency.get("p50"),
        "latency_p95_s": latency.get("p95"),
        "engine_calls_per_result": entry.get("engine_calls_per_result"),
        "timed_out": entry.get("timed_out"),
        "projected_170k_s": (
            PROJECT_REQUESTS / steady + (entry.get("first_result_after_s") or 0) if steady else None
        ),
    }


def _best(runs: dict[str, dict[str, Any]], mode: str) -> str | None:
    """The run of ``mode`` (adaptive or fixed) with the most results/s."""
    names = [n for n, r in runs.items() if r["mode"].startswith(mode) and r["results_per_s"]]
    return max(names, key=lambda n: runs[n]["results_per_s"], default=None)


def ollama_summary(
    e2e: dict[str, Any], offline_runs: dict[str, Any], check: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Every Ollama run, the best of each kind, vLLM's figures and the ratios between them."""
    runs: dict[str, dict[str, Any]] = {}
    for name, entry in e2e.items():
        match = _NAME.fullmatch(name)
        if match and entry:
            window = int(match.group(2)) if match.group(2) else None
            runs[name] = {"mode": match.group(1), "window": window, "slots": int(match.group(3))}
            runs[name] |= run_figures(entry)
    if not runs and not check:
        return None
    vllm = run_figures(e2e["adaptive"]) if e2e.get("adaptive") else {}
    offline = (offline_runs.get("schema") or {}).get("requests_per_s")
    adaptive, ceiling = _best(runs, "adaptive"), _best(runs, "fixed")

    def rps(name: str | None) -> float | None:
        return runs[name]["results_per_s"] if name in runs else None

    return {
        "check": check,
        "runs": runs,
        "prototype_pattern": PROTOTYPE if PROTOTYPE in runs else None,
        "best_adaptive": adaptive,
        "ceiling_best_fixed": ceiling,
        "vllm_adaptive": vllm or None,
        "vllm_offline_schema_rps": offline,
        "ratios": {
            "adaptive_over_prototype": _ratio(rps(adaptive), rps(PROTOTYPE)),
            "adaptive_over_ceiling": _ratio(rps(adaptive), rps(ceiling)),
            "vllm_adaptive_over_ollama_adaptive": _ratio(vllm.get("results_per_s"), rps(adaptive)),
            "vllm_adaptive_over_prototype": _ratio(vllm.get("results_per_s"), rps(PROTOTYPE)),
            "vllm_offline_over_ollama_ceiling": _ratio(offline, rps(ceiling)),
        },
    }


def _row(name: str, run: dict[str, Any], how: str) -> str:
    return (
        f"| {name} | {how} | {_fmt(run.get('results_per_s'))} | {_fmt(run.get('ok_share'))} | "
        f"{_fmt(run.get('ok_per_s'))} | {_fmt(run.get('latency_p50_s'), 1)}/"
        f"{_fmt(run.get('latency_p95_s'), 1)} | {_fmt(run.get('engine_calls_per_result'))} | "
        f"{_fmt(run.get('projected_170k_s'), 0)} |"
    )


def ollama_markdown(summary: dict[str, Any]) -> list[str]:
    """The side-by-side table, the ratios and the GPU check, as Markdown lines."""
    lines = ["", "## Ollama and vLLM side by side (production path, same prompts)", ""]
    check = summary.get("check") or {}
    if check:
        gpus = [d.get("description") or d.get("name") for d in check.get("devices") or []]
        verdict = "ok" if check.get("ok") else f"FAILED {check.get('failures')}"
        lines += [
            f"Ollama GPU check: {verdict}"
            f"; devices {gpus}; offloaded {check.get('offloaded_layers')}; size "
            f"{check.get('size')} / in GPU memory {check.get('size_vram')}.",
            "",
        ]
    lines += [
        "| run | how | results/s | ok share | ok/s | e2e p50/p95 s | calls/result | 170k s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, run in summary["runs"].items():
        window = "adaptive" if run["window"] is None else f"window {run['window']}"
        lines.append(_row(name, run, f"Ollama, {run['slots']} slots, {window}"))
    if summary.get("vllm_adaptive"):
        lines.append(_row("adaptive", summary["vllm_adaptive"], "vLLM, adaptive"))
    lines += [
        "",
        f"Best Ollama adaptive: {summary['best_adaptive']}; Ollama's ceiling (best fixed): "
        f"{summary['ceiling_best_fixed']}; vLLM offline schema "
        f"{_fmt(summary['vllm_offline_schema_rps'])} requests/s.",
        "Ratios: "
        + ", ".join(f"{key} {_fmt(value)}" for key, value in summary["ratios"].items())
        + ".",
    ]
    return lines
