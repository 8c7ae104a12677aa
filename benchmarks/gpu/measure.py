"""What the end-to-end and direct runs measure alike, without Kafka.

vLLM's side: the prefix-cache reset between phases, its counters summed over one or more
engines and their change over a run. The results' side: the status, usage and timings of a
native result or an OpenAI batch output line, and the throughput, latency and token statistics
of a run's results.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from benchlib import http_post, http_text, metric_sums, summary

from producer.usefulness import usefulness

VLLM_GAUGES = ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc")
VLLM_COUNTERS = (
    "vllm:prefix_cache_queries_total",
    "vllm:prefix_cache_hits_total",
    "vllm:num_preemptions_total",
    "vllm:prompt_tokens_total",
    "vllm:generation_tokens_total",
    "vllm:request_success_total",
)


def reset_prefix_cache(engine: str) -> str:
    """Empties vLLM's prefix cache (needs VLLM_SERVER_DEV_MODE=1); retries while requests run."""
    for _ in range(10):
        status, body = http_post(f"{engine}/reset_prefix_cache")
        if status != 200:
            return f"http {status}"  # not a vLLM in dev mode (the simulator, say): nothing to reset
        if '"success":true' in body.replace(" ", ""):
            return "reset"
        time.sleep(1.0)
    return "not reset: blocks still in use"


def add_up(parts: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """The sum of several ``metric_sums`` results, name by name."""
    total: dict[str, float] = {}
    for part in parts:
        for name, value in part.items():
            total[name] = total.get(name, 0.0) + value
    return total


def engine_metrics(engines: Iterable[str], timeout: float = 5.0) -> list[dict[str, float]]:
    """Each engine's ``vllm:`` metrics (an empty dict for one that does not answer)."""
    return [metric_sums(http_text(f"{e}/metrics", timeout), "vllm:") for e in engines]


def counter_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float | None]:
    """vLLM's counters over the run, and the prefix-cache hit share they imply."""
    delta: dict[str, float | None] = {}
    for name in VLLM_COUNTERS:
        delta[name] = after.get(name, 0.0) - before.get(name, 0.0)
    queries = after.get(VLLM_COUNTERS[0], 0.0) - before.get(VLLM_COUNTERS[0], 0.0)
    hits = after.get(VLLM_COUNTERS[1], 0.0) - before.get(VLLM_COUNTERS[1], 0.0)
    delta["prefix_cache_hit_share"] = hits / queries if queries else None
    return delta


def describe(result: dict[str, Any]) -> dict[str, Any]:
    """Status, usage and timings of one result, native or OpenAI batch output line."""
    if "custom_id" in result:
        response = result.get("response") or {}
        body = response.get("body") or {}
        usage = body.get("usage") or {}
        ok = result.get("error") is None and response.get("status_code") == 200
        return {"ok": ok, "usage": usage, "timings": None, "attempts": None}
    return {
        "ok": result.get("status") == "ok",
        "usage": result.get("usage") or {},
        "timings": result.get("timings"),
        "attempts": result.get("attempts"),
        "completed_at": result.get("completed_at"),
        "error": (result.get("error") or {}).get("reason"),
    }


def _rates(times: list[float], started: float, completion: float) -> dict[str, Any]:
    """Requests/s and output tokens/s from the start, first to last, and over 10-90%."""
    n = len(times)
    first, last = times[0], times[-1]
    ten, ninety = times[int(0.1 * (n - 1))], times[int(0.9 * (n - 1))]
    return {
        "first_result_after_s": first - started,
        "wall_from_start_s": last - started,
        "requests_per_s_from_start": n / (last - started),
        "requests_per_s_first_to_last": (n - 1) / (last - first) if last > first else None,
        "requests_per_s_steady_10_90": 0.8 * (n - 1) / (ninety - ten) if ninety > ten else None,
        "output_tokens_per_s_from_start": completion / (last - started),
        "output_tokens_per_s_first_to_last": completion / (last - first) if last > first else None,
    }


def _errors(described: Iterable[dict[str, Any]]) -> dict[str, int]:
    errors: dict[str, int] = {}
    for d in described:
        if not d["ok"]:
            reason = str(d.get("error") or "batch_error")
            errors[reason] = errors.get(reason, 0) + 1
    return errors


def statistics(
    results: dict[str, tuple[float, dict[str, Any]]],
    started: float,
    expected_lengths: dict[str, int],
) -> dict[str, Any]:
    """Throughput, latency and token statistics of results (id -> (time, result))."""
    times = sorted(t for t, _ in results.values())
    described = {k: describe(v) for k, (_, v) in results.items()}
    out: dict[str, Any] = {"results": len(times)}
    if not times:
        return out
    completions = [float(d["usage"].get("completion_tokens") or 0) for d in described.values()]
    prompt = sum(float(d["usage"].get("prompt_tokens") or 0) for d in described.values())
    out |= {"ok": sum(1 for d in described.values() if d["ok"])}
    out |= _rates(times, started, sum(completions))
    out |= {"completion_tokens": summary(completions), "prompt_tokens_total": prompt}
    # Only results of one engine call: a repair's usage adds the longer repair prompt.
    single = {k: d for k, d in described.items() if int(d.get("attempts") or 1) == 1}
    mismatched = [
        k
        for k, d in single.items()
        if k in expected_lengths
        and d["usage"].get("prompt_tokens") not in (None, expected_lengths[k])
    ]
    out["prompt_tokens_mismatch"] = {"count": len(mismatched), "examples": mismatched[:5]}
    out["repeated_calls"] = len(described) - len(single)
    out["ok_share"] = out["ok"] / len(described)
    out["ok_per_s_from_start"] = out["ok"] / out["wall_from_start_s"] if out["ok"] else 0.0
    out["errors"] = _errors(described.values())
    out["usefulness"] = usefulness(v for _, v in results.values()).as_dict()
    timings = [d["timings"] for d in described.values() if d["timings"]]
    if timings:
        out["latency_s"] = {
            key: summary([float(t[key]) for t in timings])
            for key in ("end_to_end_s", "inference_s", "queued_s")
        }
        attempts = [int(d["attempts"] or 1) for d in described.values() if d["timings"]]
        out["engine_calls_per_result"] = sum(attempts) / len(attempts)
    return out
