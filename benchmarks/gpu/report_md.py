"""The report as Markdown: one table row per run (offline, bench serve, direct, end to end),
the scaling line, and the summary ratios as JSON. ``report.py`` builds the data.
"""

from __future__ import annotations

import json
from typing import Any

from report_ollama import ollama_markdown


def fmt(value: Any, digits: int = 2) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return "-" if value is None else str(value)


def _offline_row(name: str, run: dict[str, Any]) -> str:
    notes = (
        f"{run.get('requests')} requests, finish {run.get('finish_reasons')}, "
        f"prefix hits {fmt(run.get('prefix_cache_hit_share'))}"
    )
    check = run.get("validation")
    if check:
        strict, tolerant = check.get("json_strict_share"), check.get("json_tolerant_share")
        notes += (
            f", valid {fmt(check.get('valid_share'))} "
            f"(strict JSON {fmt(strict)}, tolerant {fmt(tolerant)})"
        )
    rps, tok = fmt(run.get("requests_per_s")), fmt(run.get("output_tokens_per_s"), 0)
    return f"| offline {name} | {rps} | {tok} | {notes} |"


def _serve_row(p: dict[str, Any]) -> str:
    notes = (
        f"median e2el {fmt(p.get('median_e2el_ms'), 0)} ms, "
        f"p95 {fmt(p.get('p95_e2el_ms'), 0)} ms, failed {p.get('failed')}"
    )
    rps, tok = fmt(p.get("request_throughput")), fmt(p.get("output_throughput"), 0)
    return f"| vllm bench serve c={p.get('max_concurrency')} | {rps} | {tok} | {notes} |"


def _direct_row(name: str, d: dict[str, Any]) -> str:
    lat = d.get("latency_s") or {}
    notes = (
        f"{d.get('ok')} ok, {d.get('failed')} failed, "
        f"latency p50/p95 {fmt(lat.get('p50'), 2)}/{fmt(lat.get('p95'), 2)} s, "
        f"client CPU {fmt(d.get('client_cpu_ms_per_request'), 3)} ms/request"
        + (", TIMED OUT" if d.get("timed_out") else "")
    )
    rps, tok = fmt(d.get("requests_per_s")), fmt(d.get("output_tokens_per_s"), 0)
    return f"| {name} | {rps} | {tok} | {notes} |"


def _e2e_row(name: str, e: dict[str, Any]) -> str:
    lat = (e.get("latency_s") or {}).get("end_to_end_s") or {}
    eng = (e.get("worker_histograms") or {}).get("evalstream_engine_latency_seconds") or {}
    notes = (
        f"{e.get('results')} results, {e.get('ok')} ok, "
        f"useful {fmt((e.get('usefulness') or {}).get('useful_share'))}, "
        f"tokens/reply {fmt(e.get('mean_completion_tokens'), 0)}, "
        f"drain {fmt(e.get('wall_from_start_s'), 0)} s, "
        f"e2e p50/p95 {fmt(lat.get('p50'), 1)}/{fmt(lat.get('p95'), 1)} s, "
        f"engine p50/p95 {fmt(eng.get('p50'), 1)}/{fmt(eng.get('p95'), 1)} s, "
        f"calls/result {fmt(e.get('engine_calls_per_result'))}, DLQ {e.get('dead_letters')}, "
        f"errors {e.get('errors') or {}}, retries {e.get('retries_by_reason') or {}}"
    )
    moves = e.get("window_moves") or []
    if moves:
        notes += f", window moves {len(moves)}, last: {moves[-1][:90]}"
    if len(e.get("workers") or []) > 1:
        split = "/".join(fmt(w.get("completed"), 0) for w in e["workers"])
        notes += f", completed per worker {split}"
    rps = f"{fmt(e.get('rps_from_start'))} (steady {fmt(e.get('rps_steady_10_90'))})"
    return f"| e2e {name} | {rps} | {fmt(e.get('out_tok_per_s_from_start'), 0)} | {notes} |"


def markdown(data: dict[str, Any]) -> str:
    """The report as a Markdown table and the summary ratios."""
    workload = data.get("workload") or {}
    lines = [f"# GPU benchmark (vLLM 0.26.0, model {workload.get('model', '?')})", ""]
    if workload:
        tokens = workload.get("prompt_tokens", {})
        lines += [
            f"Workload: {workload.get('jobs')} jobs; prompt tokens mean "
            f"{fmt(tokens.get('mean'), 0)} (p50 {fmt(tokens.get('p50'), 0)}, "
            f"p95 {fmt(tokens.get('p95'), 0)}); shared job prefix "
            f"{fmt(workload.get('shared_job_prefix_tokens_mean'), 0)} tokens; "
            f"text scale {fmt(workload.get('text_scale_factor'))}.",
            "",
        ]
    lines += ["| run | requests/s | output tok/s | notes |", "| --- | --- | --- | --- |"]
    lines += [_offline_row(n, r) for n, r in (data["offline"].get("runs") or {}).items()]
    lines += [_serve_row(p) for p in data["serve"]["points"]]
    lines += [_direct_row(n, d) for n, d in (data.get("direct") or {}).items()]
    lines += [_e2e_row(n, e) for n, e in data["e2e"].items() if e]
    scale = data["summary"].get("scaling")
    if scale:
        lines += [
            "",
            f"Scaling, two GPUs over one (e2e-2gpu ÷ e2e-noschema, requests/s): "
            f"{fmt(scale['e2e_2gpu_over_noschema_rps'])} (target ≥ {scale['target']}, "
            f"{'met' if scale['met'] else 'NOT met'}).",
        ]
    if data["summary"].get("ollama"):
        lines += ollama_markdown(data["summary"]["ollama"])
    lines += ["", "```json", json.dumps(data["summary"], indent=1, default=str), "```", ""]
    lines += [f"GPU utilisation (mean % per phase): {data.get('gpu_util_mean_pct')}", ""]
    return "\n".join(lines)
