"""Collects every phase's JSON into one ``results.json`` and a Markdown ``report.md``.

Reads ``RESULTS_DIR``: ``workload.json``, ``offline.json``, ``serve/c*.json`` (vllm bench serve),
``e2e-*.json``, ``phases.jsonl`` (phase start/end) and ``gpu.csv`` (GPU utilisation samples).
The ratios are the issue's: end-to-end requests/s through Kafka over the offline ceiling (target
>= 0.90) and over the best ``vllm bench serve`` point (target >= 1.0), with the same prompts.

Usage: report.py RESULTS_DIR OUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from benchlib import read_json, write_json

PROJECT_REQUESTS = 170_000


def gpu_util(results: Path) -> dict[str, float]:
    """Mean GPU utilisation (%) per phase, from the sampler and the phase log."""
    samples: list[tuple[float, float]] = []
    try:
        for line in (results / "gpu.csv").read_text().splitlines():
            t, util, _mem = line.split(",")
            samples.append((float(t), float(util)))
    except (OSError, ValueError):
        return {}
    means: dict[str, float] = {}
    try:
        phases = [json.loads(x) for x in (results / "phases.jsonl").read_text().splitlines() if x]
    except (OSError, ValueError):
        return {}
    for phase in phases:
        inside = [u for t, u in samples if phase["start"] <= t <= phase.get("end", t)]
        if inside:
            means[phase["name"]] = sum(inside) / len(inside)
    return means


def serve_points(results: Path) -> list[dict[str, Any]]:
    """The summary fields of each vllm bench serve result, by concurrency."""
    points = []
    for path in sorted((results / "serve").glob("c*.json")):
        data = read_json(path) or {}
        keep = (
            "max_concurrency",
            "completed",
            "failed",
            "duration",
            "request_throughput",
            "output_throughput",
            "total_token_throughput",
            "median_ttft_ms",
            "p95_ttft_ms",
            "median_e2el_ms",
            "p95_e2el_ms",
            "median_tpot_ms",
        )
        points.append({k: data.get(k) for k in keep})
    return sorted(points, key=lambda p: p.get("max_concurrency") or 0)


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def e2e_entry(data: dict[str, Any] | None) -> dict[str, Any] | None:
    if not data:
        return None
    stats = data.get("stats", {})
    return {
        "results": stats.get("results"),
        "ok": stats.get("ok"),
        "timed_out": data.get("timed_out"),
        "rps_from_start": stats.get("requests_per_s_from_start"),
        "rps_first_to_last": stats.get("requests_per_s_first_to_last"),
        "rps_steady_10_90": stats.get("requests_per_s_steady_10_90"),
        "out_tok_per_s_from_start": stats.get("output_tokens_per_s_from_start"),
        "wall_from_start_s": stats.get("wall_from_start_s"),
        "first_result_after_s": stats.get("first_result_after_s"),
        "latency_s": stats.get("latency_s"),
        "engine_calls_per_result": stats.get("engine_calls_per_result"),
        "errors": stats.get("errors"),
        "dead_letters": data.get("dead_letters"),
        "prompt_tokens_mismatch": stats.get("prompt_tokens_mismatch", {}).get("count"),
        "worker_histograms": data.get("worker_histograms"),
        "sampled": data.get("sampled"),
        "vllm_prefix_cache_hit_share": (data.get("vllm_counters_delta") or {}).get(
            "prefix_cache_hit_share"
        ),
        "vllm_preemptions": (data.get("vllm_counters_delta") or {}).get(
            "vllm:num_preemptions_total"
        ),
    }


def build(results: Path) -> dict[str, Any]:
    offline = read_json(results / "offline.json") or {}
    runs = offline.get("runs", {})
    off_no = (runs.get("noschema") or {}).get("requests_per_s")
    off_schema = runs.get("schema") or {}
    points = serve_points(results)
    best = max(points, key=lambda p: p.get("request_throughput") or 0, default=None)
    best_rps = best.get("request_throughput") if best else None
    e2e = {
        name: e2e_entry(read_json(results / f"e2e-{name}.json"))
        for name in ("noschema", "fixed8", "adaptive")
    }
    summary: dict[str, Any] = {}
    for name in ("noschema", "fixed8"):
        entry = e2e[name]
        if entry:
            rps = entry["rps_from_start"]
            summary[name] = {
                "e2e_over_offline": ratio(rps, off_no),
                "e2e_over_best_serve": ratio(rps, best_rps),
                "steady_over_offline": ratio(entry["rps_steady_10_90"], off_no),
                "steady_over_best_serve": ratio(entry["rps_steady_10_90"], best_rps),
            }
    c8 = next((p for p in points if p.get("max_concurrency") == 8), None)
    if e2e["fixed8"] and c8:
        summary["fixed8"]["e2e_over_serve_c8"] = ratio(
            e2e["fixed8"]["rps_from_start"], c8.get("request_throughput")
        )
    summary["best_serve"] = {
        "concurrency": best.get("max_concurrency") if best else None,
        "requests_per_s": best_rps,
    }
    summary["latency_s"] = {
        name: {
            "end_to_end": (entry.get("latency_s") or {}).get("end_to_end_s"),
            "inference": (entry.get("latency_s") or {}).get("inference_s"),
            "engine_call": (entry.get("worker_histograms") or {}).get(
                "evalstream_engine_latency_seconds"
            ),
        }
        for name, entry in e2e.items()
        if entry
    }
    adaptive = e2e["adaptive"]
    if adaptive:
        steady = adaptive["rps_steady_10_90"] or adaptive["rps_from_start"]
        summary["adaptive_schema"] = {
            "e2e_over_offline_schema_rps": ratio(
                adaptive["rps_from_start"], off_schema.get("requests_per_s")
            ),
            "e2e_over_offline_schema_out_tok": ratio(
                adaptive["out_tok_per_s_from_start"], off_schema.get("output_tokens_per_s")
            ),
            "drain_s": adaptive["wall_from_start_s"],
            "drained_requests": adaptive["results"],
            # Steady rate plus the start-up seen here; the drain rate alone for comparison.
            "projected_170k_s": (
                PROJECT_REQUESTS / steady + (adaptive["first_result_after_s"] or 0)
                if steady
                else None
            ),
            "projected_170k_s_at_drain_rate": (
                PROJECT_REQUESTS / adaptive["rps_from_start"]
                if adaptive["rps_from_start"]
                else None
            ),
        }
    no_schema_run = runs.get("noschema") or {}
    summary["structured_output_cost"] = {
        "offline_out_tok_per_s_schema_over_noschema": ratio(
            off_schema.get("output_tokens_per_s"), no_schema_run.get("output_tokens_per_s")
        ),
        "offline_rps_schema_over_noschema": ratio(off_schema.get("requests_per_s"), off_no),
        "e2e_out_tok_per_s_schema_over_noschema": ratio(
            (adaptive or {}).get("out_tok_per_s_from_start"),
            (e2e["noschema"] or {}).get("out_tok_per_s_from_start"),
        ),
        "e2e_rps_schema_over_noschema": ratio(
            (adaptive or {}).get("rps_from_start"), (e2e["noschema"] or {}).get("rps_from_start")
        ),
    }
    return {
        "summary": summary,
        "offline": offline,
        "serve": {"points": points, "best": best},
        "e2e": e2e,
        "workload": read_json(results / "workload.json"),
        "gpu_util_mean_pct": gpu_util(results),
    }


def fmt(value: Any, digits: int = 2) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return "-" if value is None else str(value)


def _offline_row(name: str, run: dict[str, Any]) -> str:
    notes = (
        f"{run.get('requests')} requests, finish {run.get('finish_reasons')}, "
        f"prefix hits {fmt(run.get('prefix_cache_hit_share'))}"
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


def _e2e_row(name: str, e: dict[str, Any]) -> str:
    lat = (e.get("latency_s") or {}).get("end_to_end_s") or {}
    eng = (e.get("worker_histograms") or {}).get("evalstream_engine_latency_seconds") or {}
    notes = (
        f"{e.get('results')} results, {e.get('ok')} ok, "
        f"drain {fmt(e.get('wall_from_start_s'), 0)} s, "
        f"e2e p50/p95 {fmt(lat.get('p50'), 1)}/{fmt(lat.get('p95'), 1)} s, "
        f"engine p50/p95 {fmt(eng.get('p50'), 1)}/{fmt(eng.get('p95'), 1)} s, "
        f"calls/result {fmt(e.get('engine_calls_per_result'))}, DLQ {e.get('dead_letters')}"
    )
    rps = f"{fmt(e.get('rps_from_start'))} (steady {fmt(e.get('rps_steady_10_90'))})"
    return f"| e2e {name} | {rps} | {fmt(e.get('out_tok_per_s_from_start'), 0)} | {notes} |"


def markdown(data: dict[str, Any]) -> str:
    """The report as a Markdown table and the summary ratios."""
    lines = ["# GPU benchmark (one H200, vLLM 0.26.0, gemma-3-1b shape, random weights)", ""]
    workload = data.get("workload") or {}
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
    lines += [_e2e_row(n, e) for n, e in data["e2e"].items() if e]
    lines += ["", "```json", json.dumps(data["summary"], indent=1, default=str), "```", ""]
    lines += [f"GPU utilisation (mean % per phase): {data.get('gpu_util_mean_pct')}", ""]
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    results, out = Path(sys.argv[1]), Path(sys.argv[2])
    data = build(results)
    write_json(out / "results.json", data)
    (out / "report.md").write_text(markdown(data))
    print(markdown(data))


if __name__ == "__main__":
    main()
