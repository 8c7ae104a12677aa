"""Collects every phase's JSON into one ``results.json`` and a Markdown ``report.md``.

Reads ``RESULTS_DIR``: ``workload.json``, ``offline.json``, ``serve/c*.json`` (vllm bench serve),
``direct-*.json`` (direct.py), ``e2e-*.json`` (``e2e-ollama-*.json``: Ollama's, with
``ollama-check.json``), ``phases.jsonl`` (phase start/end) and ``gpu.csv``
(GPU utilisation samples). The ratios are the issue's: end-to-end requests/s through Kafka over
the offline ceiling (target >= 0.90) and over the best ``vllm bench serve`` point (target >= 1.0),
with the same prompts; two GPUs over one (``e2e-2gpu`` over ``e2e-noschema``, target >= 1.9);
and, per direct run's concurrency, where a gap to bench serve comes from (``gap_to_serve``).

Usage: report.py RESULTS_DIR OUT_DIR
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
from pathlib import Path
from typing import Any

from benchlib import read_json, write_json
from report_md import markdown
from report_ollama import ollama_summary

PROJECT_REQUESTS = 170_000


def gpu_util(results: Path) -> dict[str, float]:
    """Mean GPU utilisation (%) per phase, from the sampler and the phase log."""
    samples: list[tuple[float, float]] = []
    try:
        lines = (results / "gpu.csv").read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    for line in lines:
        with contextlib.suppress(ValueError):  # a line cut short when the sampler was killed
            t, util, _mem = line.split(",")
            samples.append((float(t), float(util)))
    means: dict[str, float] = {}
    phases: list[dict[str, Any]] = []
    try:
        lines = (results / "phases.jsonl").read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    for line in lines:
        with contextlib.suppress(ValueError):  # one bad line must not hide the others
            phases.append(json.loads(line))
    for phase in phases:
        inside = [u for t, u in samples if phase["start"] <= t <= phase.get("end", t)]
        if inside:
            means[phase["name"]] = sum(inside) / len(inside)
    means["samples"], means["phases"] = float(len(samples)), float(len(phases))
    if samples and phases and len(means) == 2:
        # Say why instead of an empty table: the clocks of the sampler and the phases disagree.
        means["no_sample_inside_a_phase"] = float(len(samples))
        means["samples_first_s"], means["samples_last_s"] = samples[0][0], samples[-1][0]
        means["phases_first_s"] = float(phases[0]["start"])
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


def _worker_entry(worker: dict[str, Any]) -> dict[str, Any]:
    """One worker of a run: its engine and what it consumed, completed and held at the end."""
    return {
        "engine": worker.get("engine"),
        "worker_id": worker.get("worker_id"),
        "consumed": worker.get("evalstream_consumed_total"),
        "completed": worker.get("evalstream_completed_total"),
        "assigned_partitions_at_end": worker.get("evalstream_assigned_partitions"),
        "rebalances": worker.get("evalstream_rebalances_total"),
    }


def e2e_entry(data: dict[str, Any] | None) -> dict[str, Any] | None:
    """The figures of one e2e run that the report and the summary use."""
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
        "engines": data.get("engines"),
        "workers": [_worker_entry(w) for w in data.get("workers") or []],
        "completed_not_read": data.get("completed_not_read"),
        "duplicates": (data.get("collect_summary") or {}).get("duplicates"),
        "ok_share": stats.get("ok_share"),
        "usefulness": stats.get("usefulness"),
        "mean_completion_tokens": (stats.get("completion_tokens") or {}).get("mean"),
        "ok_per_s_from_start": stats.get("ok_per_s_from_start"),
        "repeated_calls": stats.get("repeated_calls"),
        "output_tokens": stats.get("completion_tokens"),
        "window_moves": data.get("window_moves"),
        "retries_by_reason": _by_label(data, "retries_by_reason"),
        "invalid_outputs_by_reason": _by_label(data, "invalid_outputs_by_reason"),
    }


def _by_label(data: dict[str, Any], key: str) -> dict[str, float]:
    """A per-reason count summed over the run's workers."""
    total: dict[str, float] = {}
    for worker in data.get("workers") or []:
        for reason, value in (worker.get(key) or {}).items():
            total[reason] = total.get(reason, 0.0) + value
    return total


E2E_ORDER = ("noschema", "adaptive128", "fixed128", "fixed8", "adaptive", "2gpu")
SCALING_TARGET = 1.9


def e2e_runs(results: Path) -> dict[str, dict[str, Any] | None]:
    """Every ``e2e-*.json``, the known runs first (None where a known run is missing)."""
    found = sorted(p.name[4:-5] for p in results.glob("e2e-*.json"))
    names = [*E2E_ORDER, *(n for n in found if n not in E2E_ORDER)]
    return {name: e2e_entry(read_json(results / f"e2e-{name}.json")) for name in names}


def direct_runs(results: Path) -> dict[str, dict[str, Any]]:
    """``direct-<mode>-c<concurrency>.json`` by name (``direct chat c=128``)."""
    found = [read_json(path) for path in results.glob("direct-*-c*.json")]
    found = sorted((d for d in found if d), key=lambda d: (d.get("mode"), d.get("concurrency")))
    return {f"direct {d.get('mode')} c={d.get('concurrency')}": d for d in found}


def targets(
    e2e: dict[str, Any], off_no: float | None, points: list[dict[str, Any]]
) -> dict[str, Any]:
    """End to end over the offline ceiling and over the best (and the c=8) bench serve point."""
    best = max(points, key=lambda p: p.get("request_throughput") or 0, default=None)
    best_rps = best.get("request_throughput") if best else None
    summary: dict[str, Any] = {}
    for name in ("noschema", "fixed8"):
        entry = e2e.get(name)
        if entry:
            rps = entry["rps_from_start"]
            summary[name] = {
                "e2e_over_offline": ratio(rps, off_no),
                "e2e_over_best_serve": ratio(rps, best_rps),
                "steady_over_offline": ratio(entry["rps_steady_10_90"], off_no),
                "steady_over_best_serve": ratio(entry["rps_steady_10_90"], best_rps),
            }
    c8 = next((p for p in points if p.get("max_concurrency") == 8), None)
    if e2e.get("fixed8") and c8:
        summary["fixed8"]["e2e_over_serve_c8"] = ratio(
            e2e["fixed8"]["rps_from_start"], c8.get("request_throughput")
        )
    summary["best_serve"] = {
        "concurrency": best.get("max_concurrency") if best else None,
        "requests_per_s": best_rps,
    }
    return summary


def latencies(e2e: dict[str, Any]) -> dict[str, Any]:
    """End-to-end, inference and engine-call latency of each e2e run."""
    return {
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


def adaptive_summary(adaptive: dict[str, Any], off_schema: dict[str, Any]) -> dict[str, Any]:
    """The schema run against the offline schema run, its drain and the 170k projection."""
    steady = adaptive["rps_steady_10_90"] or adaptive["rps_from_start"]
    return {
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
            PROJECT_REQUESTS / steady + (adaptive["first_result_after_s"] or 0) if steady else None
        ),
        "projected_170k_s_at_drain_rate": (
            PROJECT_REQUESTS / adaptive["rps_from_start"] if adaptive["rps_from_start"] else None
        ),
    }


def so_cost(runs: dict[str, Any], e2e: dict[str, Any]) -> dict[str, float | None]:
    """Structured output's cost: schema over no schema, offline and end to end."""
    schema, plain = runs.get("schema") or {}, runs.get("noschema") or {}
    adaptive, noschema = e2e.get("adaptive") or {}, e2e.get("noschema") or {}
    return {
        "offline_out_tok_per_s_schema_over_noschema": ratio(
            schema.get("output_tokens_per_s"), plain.get("output_tokens_per_s")
        ),
        "offline_rps_schema_over_noschema": ratio(
            schema.get("requests_per_s"), plain.get("requests_per_s")
        ),
        "e2e_out_tok_per_s_schema_over_noschema": ratio(
            adaptive.get("out_tok_per_s_from_start"), noschema.get("out_tok_per_s_from_start")
        ),
        "e2e_rps_schema_over_noschema": ratio(
            adaptive.get("rps_from_start"), noschema.get("rps_from_start")
        ),
    }


def best_fixed(e2e: dict[str, Any], pattern: str) -> tuple[str | None, float | None]:
    """The fixed-window run of ``pattern`` (``fixed`` or ``schema-fixed``) with the best rate."""
    runs = [
        (name, entry["rps_steady_10_90"] or entry["rps_from_start"])
        for name, entry in e2e.items()
        if entry and re.fullmatch(pattern + r"\d+", name) and name != "fixed8"
    ]
    return max(runs, key=lambda run: run[1] or 0, default=(None, None))


def production(
    e2e: dict[str, Any], runs: dict[str, Any], variant: str = ""
) -> dict[str, Any] | None:
    """The production path (native requests, the schema, default settings) against its ceilings.

    ``variant`` "nobounds": the schema without string lengths in the grammar (e2e
    ``adaptive-nobounds`` and ``schema-nobounds-fixedN`` against offline ``schema_nobounds``).
    Rates are steady (10-90% of the results); ``*_from_start`` include the worker's start-up.
    """
    suffix = f"-{variant}" if variant else ""
    prod = e2e.get(f"adaptive{suffix}")
    off = runs.get(f"schema_{variant}" if variant else "schema") or {}
    if not prod:
        return None
    steady = prod["rps_steady_10_90"]
    ok_share = prod.get("ok_share")
    fixed_name, fixed_rps = best_fixed(e2e, f"schema{suffix}-fixed")
    plain_name, plain_rps = best_fixed(e2e, "fixed")
    plain = e2e.get("noschema") or {}
    return {
        "results_per_s_steady": steady,
        "ok_per_s_steady": steady * ok_share if steady and ok_share is not None else None,
        "ok_share": ok_share,
        "engine_calls_per_result": prod.get("engine_calls_per_result"),
        "over_offline_schema_rps": ratio(steady, off.get("requests_per_s")),
        "ok_over_offline_schema_valid": ratio(
            steady * ok_share if steady and ok_share is not None else None,
            off.get("valid_requests_per_s"),
        ),
        "over_offline_schema_rps_from_start": ratio(
            prod["rps_from_start"], off.get("requests_per_s")
        ),
        "adaptive_over_best_fixed": ratio(steady, fixed_rps),
        "best_fixed": fixed_name,
        "passthrough_adaptive_over_best_fixed": ratio(plain.get("rps_steady_10_90"), plain_rps),
        "passthrough_best_fixed": plain_name,
        "retries_by_reason": prod.get("retries_by_reason"),
        "invalid_outputs_by_reason": prod.get("invalid_outputs_by_reason"),
        "window_moves": prod.get("window_moves"),
    }


def scaling(e2e: dict[str, Any]) -> dict[str, Any] | None:
    """Two engines (one consumer group, a worker each) over one, same run (target >= 1.9)."""
    two, one = e2e.get("2gpu"), e2e.get("noschema")
    if not two or not one:
        return None
    value = ratio(two["rps_from_start"], one["rps_from_start"])
    return {
        "e2e_2gpu_over_noschema_rps": value,
        "steady_2gpu_over_noschema_rps": ratio(two["rps_steady_10_90"], one["rps_steady_10_90"]),
        "target": SCALING_TARGET,
        "met": value is not None and value >= SCALING_TARGET,
        "per_worker_completed": [w.get("completed") for w in two.get("workers") or []],
    }


def gap(
    direct: dict[str, Any], points: list[dict[str, Any]], e2e: dict[str, Any]
) -> dict[str, Any]:
    """Where a gap to bench serve comes from, at each direct run's concurrency.

    chat over completions: the chat endpoint; completions over bench serve at that concurrency:
    the HTTP client (non-streaming here); e2e no schema over chat: Kafka and the worker.
    """
    out: dict[str, Any] = {}
    noschema = (e2e.get("noschema") or {}).get("rps_from_start")
    for c in sorted({d.get("concurrency") for d in direct.values()}, key=lambda x: x or 0):
        chat = (direct.get(f"direct chat c={c}") or {}).get("requests_per_s")
        comp = (direct.get(f"direct completions c={c}") or {}).get("requests_per_s")
        serve = next((p for p in points if p.get("max_concurrency") == c), {})
        out[f"c={c}"] = {
            "chat_over_completions": ratio(chat, comp),
            "completions_over_serve": ratio(comp, serve.get("request_throughput")),
            "e2e_noschema_over_chat": ratio(noschema, chat),
        }
    return out


def build(results: Path) -> dict[str, Any]:
    """Every phase's figures and the summary ratios."""
    offline = read_json(results / "offline.json") or {}
    runs = offline.get("runs", {})
    off_no = (runs.get("noschema") or {}).get("requests_per_s")
    points = serve_points(results)
    e2e, direct = e2e_runs(results), direct_runs(results)
    summary = targets(e2e, off_no, points)
    summary["latency_s"] = latencies(e2e)
    adaptive = e2e.get("adaptive")
    if adaptive:
        summary["adaptive_schema"] = adaptive_summary(adaptive, runs.get("schema") or {})
    summary["production"] = production(e2e, runs)
    summary["production_nobounds"] = production(e2e, runs, "nobounds")
    summary["structured_output_cost"] = so_cost(runs, e2e)
    summary["scaling"] = scaling(e2e)
    summary["gap_to_serve"] = gap(direct, points, e2e)
    summary["ollama"] = ollama_summary(e2e, runs, read_json(results / "ollama-check.json"))
    best = max(points, key=lambda p: p.get("request_throughput") or 0, default=None)
    return {
        "summary": summary,
        "offline": offline,
        "serve": {"points": points, "best": best},
        "direct": direct,
        "e2e": e2e,
        "workload": read_json(results / "workload.json"),
        "gpu_util_mean_pct": gpu_util(results),
    }


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
