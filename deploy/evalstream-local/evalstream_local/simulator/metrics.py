"""``GET /metrics`` of the engine simulator, under vLLM's metric names.

The worker and the Grafana dashboard read a real vLLM's ``/metrics``; the simulator exposes the
same names, labels (``model_name``, ``engine``) and types, so both work against it unchanged.
"""

from __future__ import annotations

from evalstream_local.simulator.scheduler import SchedulerGauges

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


# (name after "vllm:", type, help, gauge field), in vLLM's own words.
_SERIES: tuple[tuple[str, str, str, str], ...] = (
    ("num_requests_running", "gauge", "Number of requests in model execution batches.", "running"),
    ("num_requests_waiting", "gauge", "Number of requests waiting to be processed.", "waiting"),
    (
        "kv_cache_usage_perc",
        "gauge",
        "KV-cache usage. 1 means 100 percent usage.",
        "kv_cache_usage",
    ),
    (
        "prompt_tokens_total",
        "counter",
        "Number of prefill tokens processed.",
        "prompt_tokens_total",
    ),
    (
        "generation_tokens_total",
        "counter",
        "Number of generation tokens processed.",
        "generation_tokens_total",
    ),
    (
        "num_preemptions_total",
        "counter",
        "Cumulative number of preemption from the engine.",
        "preemptions_total",
    ),
    (
        "prefix_cache_queries_total",
        "counter",
        "Prefix cache queries, in terms of number of queried tokens.",
        "prefix_cache_queries_total",
    ),
    (
        "prefix_cache_hits_total",
        "counter",
        "Prefix cache hits, in terms of number of cached tokens.",
        "prefix_cache_hits_total",
    ),
)


class SimulatorMetrics:
    """Renders the scheduler's gauges and counters in the Prometheus text format."""

    def __init__(self, model_name: str) -> None:
        self._labels = f'engine="0",model_name="{_escape(model_name)}"'

    def render(self, gauges: SchedulerGauges) -> str:
        """Returns the exposition text for one scrape."""
        lines: list[str] = []
        for name, kind, text, field in _SERIES:
            full = f"vllm:{name}"
            lines.append(f"# HELP {full} {text}")
            lines.append(f"# TYPE {full} {kind}")
            lines.append(f"{full}{{{self._labels}}} {float(getattr(gauges, field))}")
        name = "vllm:request_success_total"
        lines.append(f"# HELP {name} Count of successfully processed requests.")
        lines.append(f"# TYPE {name} counter")
        for reason in ("stop", "length", "abort"):
            count = gauges.finished_total.get(reason, 0)
            lines.append(f'{name}{{{self._labels},finished_reason="{reason}"}} {float(count)}')
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
