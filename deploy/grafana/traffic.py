"""The traffic rows of the dashboard: what flows through the workers, and how fast.

One function per row returns its panels. Panels flow left to right and wrap at the grid's
24 columns, so the widths of a row's panels are its layout. Metric names and labels follow
the catalogue in ``consumer/metrics.py``. The rows about what goes wrong are in ``health.py``.
"""

from __future__ import annotations

from deploy.grafana.panels import (
    PER_WORKER,
    Panel,
    big_number,
    graph,
    listing,
    quantile,
    quantiles,
    queries,
    query,
    rate,
    series,
    steps,
    total,
)

COMPLETED = "evalstream_completed_total"
LAG = "evalstream_consumer_lag_messages"
_ERROR = 'status="error"'
_PER_MODEL = "{{model}}"


def overview() -> list[Panel]:
    """The state of a run at a glance: throughput, backlog, ETA, workers, engines, errors."""
    results = series(COMPLETED, model=True)
    errors = series(COMPLETED, model=True, match=_ERROR)
    backlog = total(series(LAG))
    return [
        big_number(
            "Throughput",
            "Results published per second (all statuses), over the selected workers and models.",
            query(rate(results)),
            unit="reqps",
            decimals=1,
        ),
        big_number(
            "Backlog",
            "Messages not yet committed on the requests topic: consumer lag summed over the "
            "partitions of the selected workers (librdkafka statistics, every 5 s).",
            query(backlog),
            decimals=0,
            thresholds=steps(("green", None), ("orange", 1)),
        ),
        big_number(
            "ETA",
            "Backlog divided by the rate messages leave it (consumed per second over 5 minutes): "
            "the time to drain at the current pace. Empty or infinite while nothing moves.",
            query(f"{backlog} / {rate(series('evalstream_consumed_total'), window='5m')}"),
            unit="s",
            decimals=0,
        ),
        big_number(
            "Workers reporting",
            "Workers whose /metrics was scraped successfully (their build-info series is live).",
            query(total(series("evalstream_build_info"), agg="count")),
            decimals=0,
        ),
        big_number(
            "Engines up",
            "Workers whose engine answers its health check, of those reporting.",
            query(total(series("evalstream_engine_up"))),
            decimals=0,
        ),
        big_number(
            "Error share",
            "Share of results with status error over 5 minutes (the HighErrorRate alert fires "
            "above 5%).",
            query(f"{rate(errors, window='5m')} / {rate(results, window='5m')}"),
            unit="percentunit",
            decimals=1,
            thresholds=steps(("green", None), ("orange", 0.01), ("red", 0.05)),
        ),
        *_flow(),
    ]


def _flow() -> list[Panel]:
    """The second line of the overview: results by status and the backlog per topic."""
    results = series(COMPLETED, model=True)
    return [
        graph(
            "Results by status",
            "Results per second by status, and dead letters per second.",
            queries(
                (rate(results, by="status"), "{{status}}"),
                (rate(series("evalstream_dead_lettered_total")), "dead letter"),
            ),
            unit="reqps",
            width=12,
            stacked=True,
        ),
        graph(
            "Backlog by topic",
            "Consumer lag summed per topic; a steady climb means requests arrive faster than "
            "they finish.",
            [query(total(series(LAG), by="topic"), "{{topic}}")],
            width=12,
        ),
    ]


def latency() -> list[Panel]:
    """p50/p95/p99 of the end-to-end latency (also by lane), one engine call, the queue wait."""
    end_to_end = "evalstream_end_to_end_latency_seconds"
    return [
        graph(
            "End-to-end latency",
            "Request timestamp (when it was published) to its result acknowledged by the "
            "broker: queueing in Kafka, in the worker and the engine call.",
            quantiles(end_to_end),
            unit="s",
            width=6,
        ),
        graph(
            "End-to-end latency by lane",
            "p50 and p95 per lane: interactive requests overtake the bulk backlog, so their "
            "latency stays near an idle engine's while the bulk lane's grows with the backlog.",
            queries(
                (quantile(0.5, end_to_end, by="lane, le"), "{{lane}} p50"),
                (quantile(0.95, end_to_end, by="lane, le"), "{{lane}} p95"),
            ),
            unit="s",
            width=6,
        ),
        graph(
            "Engine latency",
            "One engine call (a request, or a micro-batch where the API takes a list).",
            quantiles("evalstream_engine_latency_seconds"),
            unit="s",
            width=6,
        ),
        graph(
            "Queue wait",
            "Consumed from Kafka until sent to the engine: time waiting for a window slot.",
            quantiles("evalstream_queue_wait_seconds"),
            unit="s",
            width=6,
        ),
    ]


def window() -> list[Panel]:
    """The adaptive window, the buffer, paused partitions and the micro-batch size."""

    def per_worker(metric: str) -> str:
        return total(series(metric), by="worker")

    batch = "evalstream_batch_size_requests"
    return [
        graph(
            "In flight vs window limit",
            "Requests inside the engine against the adaptive window's limit, per worker. In "
            "flight pinned at the limit with a backlog: the engine is the bottleneck.",
            queries(
                (per_worker("evalstream_in_flight_requests"), "{{worker}} in flight"),
                (per_worker("evalstream_window_limit_requests"), "{{worker}} limit"),
            ),
            width=6,
        ),
        graph(
            "Buffered",
            "Requests consumed and waiting for a window slot, per worker and lane (each lane "
            "bounded by its own backpressure).",
            [
                query(
                    total(series("evalstream_buffered_requests"), by="worker, lane"),
                    "{{worker}} {{lane}}",
                )
            ],
            width=6,
        ),
        graph(
            "Paused partitions",
            "Partitions paused for backpressure against those assigned, per worker.",
            queries(
                (per_worker("evalstream_paused_partitions"), "{{worker}} paused"),
                (per_worker("evalstream_assigned_partitions"), "{{worker}} assigned"),
            ),
            width=6,
        ),
        graph(
            "Micro-batch size",
            "Requests per micro-batch dispatched to the engine: mean and p95.",
            queries(
                (f"{rate(series(batch + '_sum'))} / {rate(series(batch + '_count'))}", "mean"),
                (quantile(0.95, batch), "p95"),
            ),
            width=6,
        ),
    ]


def tokens() -> list[Panel]:
    """Prompt and completion tokens per second by model, and per result."""
    prompt = series("evalstream_prompt_tokens_total", model=True)
    completion = series("evalstream_completion_tokens_total", model=True)
    results = rate(series(COMPLETED, model=True))
    return [
        graph(
            "Prompt tokens/s",
            "Prompt tokens the engine reported per second, by model (retries included).",
            [query(rate(prompt, by="model"), _PER_MODEL)],
        ),
        graph(
            "Completion tokens/s",
            "Tokens generated per second, by model: the GPU's decode throughput as the worker "
            "sees it.",
            [query(rate(completion, by="model"), _PER_MODEL)],
        ),
        graph(
            "Tokens per result",
            "Mean prompt and completion tokens per published result.",
            queries(
                (f"{rate(prompt)} / {results}", "prompt"),
                (f"{rate(completion)} / {results}", "completion"),
            ),
        ),
    ]


def per_model() -> list[Panel]:
    """Throughput, error share and completion tokens per result of each model."""
    results = series(COMPLETED, model=True)
    by_model = rate(results, by="model")
    return [
        graph(
            "Throughput by model and variant",
            "Results per second by routed model and A/B variant.",
            [query(rate(results, by="model, variant"), "{{model}} {{variant}}")],
            unit="reqps",
        ),
        graph(
            "Error share by model",
            "Share of each model's results with status error.",
            [
                query(
                    f"{rate(series(COMPLETED, model=True, match=_ERROR), by='model')} / {by_model}",
                    _PER_MODEL,
                )
            ],
            unit="percentunit",
            bounds=(0, None),
        ),
        graph(
            "Completion tokens per result by model",
            "Mean generated tokens per published result, by model: long outputs cost GPU time.",
            [
                query(
                    f"{rate(series('evalstream_completion_tokens_total', model=True), by='model')}"
                    f" / {by_model}",
                    _PER_MODEL,
                )
            ],
        ),
    ]


def per_worker() -> list[Panel]:
    """Throughput, backlog, latency and commit progress per worker, and the workers' table."""
    return [
        graph(
            "Throughput by worker",
            "Results per second, per worker: uneven values mean uneven partitions or a slow GPU.",
            [query(rate(series(COMPLETED, model=True), by="worker"), PER_WORKER)],
            unit="reqps",
        ),
        graph(
            "Backlog by worker",
            "Consumer lag of each worker's assigned partitions.",
            [query(total(series(LAG), by="worker"), PER_WORKER)],
        ),
        graph(
            "p95 end-to-end latency by worker",
            "95th percentile of end-to-end latency, per worker.",
            [
                query(
                    quantile(0.95, "evalstream_end_to_end_latency_seconds", by="worker, le"),
                    PER_WORKER,
                )
            ],
            unit="s",
        ),
        listing(
            "Workers",
            "Every worker reporting: its GPU, version, backend and default model.",
            series("evalstream_build_info"),
            ["worker", "gpu", "instance", "version", "backend", "model", "job"],
        ),
        graph(
            "Commit progress by worker",
            "Offsets committed per second, summed over each worker's partitions (the slope of "
            "evalstream_committed_offset). Flat while the worker consumes: a stuck message "
            "holds its partition's commits back, so a restart would re-process from there.",
            [
                query(
                    total(
                        f"deriv({series('evalstream_committed_offset')}[$__rate_interval])",
                        by="worker",
                    ),
                    PER_WORKER,
                )
            ],
            width=24,
        ),
    ]
