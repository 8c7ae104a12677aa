"""The workers of an end-to-end run: one per engine, their command lines and their metrics.

With one engine the worker runs as it always did (no worker id or GPU given). With several,
worker i drives engine i with the worker id ``<run>-<i>``, ``--gpu i`` (so its GPU gauges
report that GPU where NVML is present; ``--gpu 0`` for all with ``--one-gpu``, several engines
sharing one GPU) and metrics port ``--metrics-port`` + i; all of them
join ONE consumer group on the same topics.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from benchlib import http_text, label_sums, metric_sums
from measure import VLLM_GAUGES, add_up, engine_metrics

DEFAULT_ENGINE = "http://127.0.0.1:8000"
SAMPLE_EVERY_S = 2.0
WORKER_GAUGES = (
    "evalstream_window_limit_requests",
    "evalstream_in_flight_requests",
    "evalstream_buffered_requests",
    "evalstream_paused_partitions",
    "evalstream_gpu_utilization_ratio",  # the worker's NVML gauge (--gpu), where NVML loads
)
# Sampled per worker as well when there are several (the GPU gauge only with --gpu and NVML).
PER_WORKER_GAUGES = (
    "evalstream_assigned_partitions",
    "evalstream_in_flight_requests",
    "evalstream_window_limit_requests",
    "evalstream_gpu_utilization_ratio",
)
WORKER_COUNTS = (
    "evalstream_consumed_total",
    "evalstream_completed_total",
    "evalstream_dead_lettered_total",
    "evalstream_rebalances_total",
    "evalstream_assigned_partitions",
)
WORKER_HISTOGRAMS = (
    "evalstream_end_to_end_latency_seconds",
    "evalstream_engine_latency_seconds",
    "evalstream_queue_wait_seconds",
    "evalstream_batch_size_requests",
)


def worker_specs(args: argparse.Namespace) -> list[dict[str, Any]]:
    """One worker per engine; with several, each gets its own id, GPU index and metrics port."""
    engines = args.engine or [DEFAULT_ENGINE]
    if len(engines) == 1:
        return [{"engine": engines[0], "metrics_port": args.metrics_port, "gpu": "0"}]
    # Several engines on one GPU (--one-gpu): every worker's gauges report GPU 0.
    return [
        {
            "engine": engine,
            "metrics_port": args.metrics_port + i,
            "worker_id": f"{args.name}-{i}",
            "gpu": "0" if args.one_gpu else str(i),
        }
        for i, engine in enumerate(engines)
    ]


def consumer_command(
    args: argparse.Namespace, topics: dict[str, str], spec: dict[str, Any]
) -> list[str]:
    """The worker's command line (the flags of the CLI contract)."""
    command = [sys.executable, "-m", "consumer"]
    command += ["--bootstrap-servers", args.bootstrap, "--group", topics["group"]]
    command += ["--requests-topic", topics["requests"], "--results-topic", topics["results"]]
    command += ["--dlq-topic", topics["dlq"], "--backend", args.backend]
    command += ["--engine-url", spec["engine"], "--model", args.model]
    command += ["--metrics-port", str(spec["metrics_port"])]
    # Unset knobs are left to the worker's defaults (the production path).
    if args.window_policy:
        command += ["--window-policy", args.window_policy]
    if args.window:
        command += ["--window", str(args.window)]
    if args.window_max:
        command += ["--window-max", str(args.window_max)]
    if "worker_id" in spec:
        command += ["--worker-id", spec["worker_id"]]
    return [*command, "--gpu", spec["gpu"]]  # the worker's NVML gauges


def consumer_env(args: argparse.Namespace) -> dict[str, str]:
    """Engine settings that have no flag travel as EVALSTREAM_* variables."""
    env = dict(os.environ)
    env["EVALSTREAM_ENGINE__STRUCTURED_OUTPUT"] = "true" if args.structured_output else "false"
    env["EVALSTREAM_ENGINE__EXTRA_BODY"] = args.extra_body
    env["EVALSTREAM_ENGINE__STRING_BOUNDS"] = "true" if args.string_bounds else "false"
    if args.max_tokens is not None:
        env["EVALSTREAM_ENGINE__MAX_TOKENS"] = str(args.max_tokens)
    if args.temperature is not None:
        env["EVALSTREAM_ENGINE__TEMPERATURE"] = str(args.temperature)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def worker_texts(specs: list[dict[str, Any]], timeout: float = 5.0) -> list[str | None]:
    """Each worker's /metrics page (None for one that does not answer)."""
    return [http_text(f"http://127.0.0.1:{s['metrics_port']}/metrics", timeout) for s in specs]


def _append(
    series: dict[str, list[float]],
    values: dict[str, float],
    names: tuple[str, ...],
    suffix: str = "",
) -> None:
    """Appends each of ``names`` found in ``values`` to its series (``name`` + ``suffix``)."""
    for name in names:
        if name in values:
            series.setdefault(name + suffix, []).append(values[name])


def sample(specs: list[dict[str, Any]], series: dict[str, list[float]]) -> None:
    """One sample of the workers' window gauges and the engines' queue gauges.

    The plain names are sums over the workers (engines); with several, ``name[i]`` is worker
    (engine) i's own series.
    """
    workers = [metric_sums(text) for text in worker_texts(specs, 2.0)]
    engines = engine_metrics([s["engine"] for s in specs], 2.0)
    _append(series, add_up(workers), WORKER_GAUGES)
    _append(series, add_up(engines), VLLM_GAUGES)
    if len(specs) > 1:
        for i, (worker, engine) in enumerate(zip(workers, engines, strict=True)):
            _append(series, worker, PER_WORKER_GAUGES, f"[{i}]")
            _append(series, engine, VLLM_GAUGES, f"[{i}]")


def worker_counts(spec: dict[str, Any], text: str | None, rc: int | None) -> dict[str, Any]:
    """What one worker did, from its metrics at the end of the run."""
    sums = metric_sums(text, "evalstream_")
    counts = spec | {"exit_early": rc} | {name: sums.get(name) for name in WORKER_COUNTS}
    # Why engine calls were repeated (repairs are "invalid_output"), and what was invalid.
    counts["retries_by_reason"] = label_sums(text, "evalstream_retries_total", "reason")
    counts["invalid_outputs_by_reason"] = label_sums(
        text, "evalstream_invalid_outputs_total", "reason"
    )
    return counts
