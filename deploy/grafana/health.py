"""The health rows of the dashboard: errors, the engine and its GPU.

One function per row returns its panels, as in ``traffic.py``. A counter with a label
(reason, outcome) has a series per value the worker has seen or pre-declared in
``consumer/metrics.py``; vLLM's series need the ``vllm`` scrape job.
"""

from __future__ import annotations

from deploy.grafana.panels import (
    PER_INSTANCE,
    PER_WORKER,
    Panel,
    big_number,
    graph,
    queries,
    query,
    rate,
    series,
    steps,
    total,
    vllm,
)

_PER_REASON = "{{reason}}"
_GPU = "{{worker}} GPU {{gpu}}"
_LOOKUPS = "evalstream_cache_lookups_total"


def errors() -> list[Panel]:
    """Dead letters, retries, error results, rebalances; invalid replies and expired requests."""
    by_reason = "reason"
    return [
        graph(
            "Dead letters by reason",
            "Messages sent to the dead-letter topic per second, by reason (bad input, permanent "
            "engine errors, retries exhausted).",
            [query(rate(series("evalstream_dead_lettered_total"), by=by_reason), _PER_REASON)],
            unit="reqps",
            width=6,
            stacked=True,
        ),
        graph(
            "Retries by reason",
            "Engine calls retried per second, by reason (http_5xx, connect, timeout, "
            "engine_overloaded, invalid_output repair).",
            [query(rate(series("evalstream_retries_total"), by=by_reason), _PER_REASON)],
            unit="reqps",
            width=6,
            stacked=True,
        ),
        graph(
            "Error results",
            "Results published with status error per second (reply invalid after the repair "
            "attempt), by model.",
            [
                query(
                    rate(
                        series("evalstream_completed_total", model=True, match='status="error"'),
                        by="model",
                    ),
                    "{{model}}",
                )
            ],
            unit="reqps",
            width=6,
        ),
        graph(
            "Rebalances",
            "Partitions assigned, revoked or lost per interval, by kind.",
            [
                query(
                    rate(series("evalstream_rebalances_total"), by="kind", fn="increase"),
                    "{{kind}}",
                )
            ],
            width=6,
        ),
        *_rejected(),
    ]


def _rejected() -> list[Panel]:
    """Error results for their content, and requests whose deadline passed before sending."""
    return [
        graph(
            "Invalid outputs by reason",
            "Replies published as error results for their content, per second: truncated (cut "
            "at max_tokens: raise engine.max_tokens or shorten the answer schema) or "
            "invalid_output (failed the schema after the repair attempt).",
            [query(rate(series("evalstream_invalid_outputs_total"), by="reason"), _PER_REASON)],
            unit="reqps",
            width=12,
            stacked=True,
        ),
        graph(
            "Expired requests",
            "Requests published as error results without an engine call because their deadline "
            "had passed, per worker: the backlog is older than the deadlines producers set.",
            [query(rate(series("evalstream_expired_total"), by="worker"), PER_WORKER)],
            unit="reqps",
            width=12,
        ),
    ]


def engine() -> list[Panel]:
    """Health check and circuit per worker, the engine's queue, and vLLM's own view."""
    return [
        big_number(
            "Engine up",
            "Engine health check, per worker.",
            query(total(series("evalstream_engine_up"), by="worker", agg="max"), PER_WORKER),
            thresholds=steps(("red", None), ("green", 1)),
            states={"0": ("DOWN", "red"), "1": ("UP", "green")},
        ),
        big_number(
            "Circuit",
            "Open after consecutive connection failures: the worker admits nothing until the "
            "engine's health check answers again.",
            query(total(series("evalstream_circuit_open"), by="worker", agg="max"), PER_WORKER),
            thresholds=steps(("green", None), ("red", 1)),
            states={"0": ("closed", "green"), "1": ("OPEN", "red")},
        ),
        graph(
            "Engine queue (worker view)",
            "Requests waiting inside the engine as the worker's window controller read it (vLLM).",
            [query(total(series("evalstream_engine_waiting_requests"), by="worker"), PER_WORKER)],
        ),
        *_vllm(),
        *_result_cache(),
    ]


def _vllm() -> list[Panel]:
    """vLLM's scheduler, KV cache, prefix cache and generation, from its own /metrics."""
    kv_cache = f"{vllm('vllm:kv_cache_usage_perc')} or {vllm('vllm:gpu_cache_usage_perc')}"
    hits = rate(vllm("vllm:prefix_cache_hits_total"), by="instance")
    prefix_queries = rate(vllm("vllm:prefix_cache_queries_total"), by="instance")
    return [
        graph(
            "vLLM running / waiting",
            "vLLM's own scheduler: requests in the running batch and queued, per engine. Needs "
            "the vllm scrape job; a standing queue means the window is larger than the batch.",
            queries(
                (total(vllm("vllm:num_requests_running"), by="instance"), "{{instance}} running"),
                (total(vllm("vllm:num_requests_waiting"), by="instance"), "{{instance}} waiting"),
            ),
        ),
        graph(
            "vLLM KV cache usage",
            "Share of the KV cache in use, per engine (vllm:kv_cache_usage_perc; "
            "vllm:gpu_cache_usage_perc on vLLM before V1).",
            [query(total(kv_cache, by="instance", agg="max"), PER_INSTANCE)],
            unit="percentunit",
            bounds=(0, 1),
        ),
        graph(
            "vLLM prefix cache hit rate",
            "Prompt tokens served from the prefix cache: high when candidates of the same job "
            "share the job description prefix.",
            [query(f"{hits} / {prefix_queries}", PER_INSTANCE)],
            unit="percentunit",
            bounds=(0, 1),
        ),
        graph(
            "vLLM generation tokens/s",
            "Tokens generated per second as vLLM counts them, all clients included.",
            [query(rate(vllm("vllm:generation_tokens_total"), by="instance"), PER_INSTANCE)],
        ),
    ]


def _result_cache() -> list[Panel]:
    """The worker's result cache: lookups by outcome and the share answered from it."""
    hits = rate(series(_LOOKUPS, match='outcome="hit"'))
    return [
        graph(
            "Result cache lookups",
            "Lookups of native requests in the result cache per second, by outcome: a hit is "
            "answered without an engine call. Zero while the cache is off (cache.enabled).",
            [query(rate(series(_LOOKUPS), by="outcome"), "{{outcome}}")],
            unit="reqps",
            width=12,
            stacked=True,
        ),
        graph(
            "Result cache hit ratio",
            "Share of result-cache lookups answered from the cache: requests sent again "
            "(re-sent applications, replays) that cost no engine call. Empty while the cache "
            "is off.",
            [query(f"{hits} / {rate(series(_LOOKUPS))}", "hit ratio")],
            unit="percentunit",
            width=12,
            bounds=(0, 1),
        ),
    ]


def gpu() -> list[Panel]:
    """Utilisation, memory and power of each worker's GPU (NVML, read by the worker)."""
    return [
        graph(
            "GPU utilisation",
            "Share of time the worker's GPU ran a kernel (NVML; needs the gpu extra and --gpu).",
            [query(series("evalstream_gpu_utilization_ratio"), _GPU)],
            unit="percentunit",
            bounds=(0, 1),
        ),
        graph(
            "GPU memory",
            "GPU memory used and installed (vLLM reserves most of it for the KV cache at start).",
            queries(
                (series("evalstream_gpu_memory_used_bytes"), f"{_GPU} used"),
                (series("evalstream_gpu_memory_total_bytes"), f"{_GPU} total"),
            ),
            unit="bytes",
            bounds=(0, None),
        ),
        graph(
            "GPU power",
            "Power draw of the worker's GPU.",
            [query(series("evalstream_gpu_power_watts"), _GPU)],
            unit="watt",
            bounds=(0, None),
        ),
    ]
