"""The metrics catalogue: every metric the worker exports, in one place.

Names follow ``evalstream_<what>_<unit>``; counters end in ``_total`` and times are
in seconds. Every metric carries the worker's identity and GPU as labels, and is
registered in an injected registry so tests read values from a fresh one. Values
that only exist at scrape time (consumer lag, committed offsets) come from
`KafkaStatsCollector`, fed by librdkafka's statistics callback.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from consumer.errors import InvalidOutput, TruncatedOutput
from consumer.lanes import LANES, Lane

_ID = ("worker", "gpu")

# End-to-end latency spans seconds (idle engine) to hours (a 170K backlog).
_E2E_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
_ENGINE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
# Label values known in advance get a series at 0 from the start, so dashboards and alerts
# see a rare outcome's series before its first occurrence (rate() is 0, not absent).
INVALID_OUTPUT_REASONS = (TruncatedOutput.reason, InvalidOutput.reason)
CACHE_OUTCOMES = ("hit", "miss")


class Metrics:
    """Every metric of one worker, bound to its identity labels.

    Args:
        registry: where the metrics are registered (a fresh one per test).
        worker: the worker id label.
        gpu: the GPU label ("" when not bound to one).
    """

    def __init__(self, registry: CollectorRegistry, worker: str, gpu: str = "") -> None:
        self.ids = {"worker": worker, "gpu": gpu}
        self._registry = registry
        self._counters()
        self._gauges()
        self._histograms()
        self._build_info = Gauge(
            "evalstream_build_info",
            "Version, backend and model of this worker.",
            (*_ID, "version", "backend", "model"),
            registry=registry,
        )
        self.kafka_stats = KafkaStatsCollector(self.ids)
        registry.register(self.kafka_stats)

    def _counter(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
        return Counter(name, doc, (*_ID, *labels), registry=self._registry)

    def _gauge(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, doc, (*_ID, *labels), registry=self._registry)

    def _histogram(
        self, name: str, doc: str, buckets: tuple[float, ...], labels: tuple[str, ...] = ()
    ) -> Histogram:
        return Histogram(name, doc, (*_ID, *labels), buckets=buckets, registry=self._registry)

    def _counters(self) -> None:
        ids, counter = self.ids, self._counter
        consumed = counter(
            "evalstream_consumed_total",
            "Messages consumed, by lane (bulk: the requests topic; interactive: its own topic).",
            ("lane",),
        )
        self.consumed: dict[Lane, Any] = {lane: consumed.labels(**ids, lane=lane) for lane in LANES}
        self.completed = counter(
            "evalstream_completed_total",
            "Results published, by status, model and A/B variant.",
            ("status", "model", "variant"),
        )
        self.dead_lettered = counter(
            "evalstream_dead_lettered_total",
            "Messages sent to the dead-letter topic, by reason.",
            ("reason",),
        )
        self.retries = counter(
            "evalstream_retries_total", "Engine calls retried, by reason.", ("reason",)
        )
        self.cache_lookups = counter(
            "evalstream_cache_lookups_total",
            "Result-cache lookups of native requests, by outcome (hit: no engine call).",
            ("outcome",),
        )
        self.expired = counter(
            "evalstream_expired_total",
            "Requests not sent to the engine because their deadline had passed.",
        ).labels(**ids)
        self.invalid_outputs = counter(
            "evalstream_invalid_outputs_total",
            "Replies published as errors for their content: truncated (cut at max_tokens) or "
            "invalid_output (failed the schema after the repair).",
            ("reason",),
        )
        for reason in INVALID_OUTPUT_REASONS:
            self.invalid_outputs.labels(**ids, reason=reason)
        for outcome in CACHE_OUTCOMES:
            self.cache_lookups.labels(**ids, outcome=outcome)
        self.rebalances = counter(
            "evalstream_rebalances_total", "Partition assignment changes, by kind.", ("kind",)
        )
        self.prompt_tokens = counter(
            "evalstream_prompt_tokens_total", "Prompt tokens processed by the engine.", ("model",)
        )
        self.completion_tokens = counter(
            "evalstream_completion_tokens_total", "Tokens generated by the engine.", ("model",)
        )

    def _gauges(self) -> None:
        ids, gauge = self.ids, self._gauge
        self.in_flight = gauge(
            "evalstream_in_flight_requests", "Requests inside the engine now."
        ).labels(**ids)
        self.window_limit = gauge(
            "evalstream_window_limit_requests", "Current in-flight window limit."
        ).labels(**ids)
        buffered = gauge(
            "evalstream_buffered_requests",
            "Requests consumed and waiting for a window slot, by lane.",
            ("lane",),
        )
        self.buffered: dict[Lane, Any] = {lane: buffered.labels(**ids, lane=lane) for lane in LANES}
        self.paused_partitions = gauge(
            "evalstream_paused_partitions", "Partitions paused for backpressure."
        ).labels(**ids)
        self.assigned_partitions = gauge(
            "evalstream_assigned_partitions", "Partitions assigned to this worker."
        ).labels(**ids)
        self.engine_up = gauge(
            "evalstream_engine_up", "1 when the engine answers its health check."
        ).labels(**ids)
        self.circuit_open = gauge(
            "evalstream_circuit_open", "1 while the engine circuit is open (no admissions)."
        ).labels(**ids)
        self.engine_waiting = gauge(
            "evalstream_engine_waiting_requests", "Requests queued inside the engine (vLLM)."
        ).labels(**ids)

    def _histograms(self) -> None:
        ids, histogram = self.ids, self._histogram
        end_to_end = histogram(
            "evalstream_end_to_end_latency_seconds",
            "Request timestamp to result acknowledged, by lane.",
            _E2E_BUCKETS,
            ("lane",),
        )
        self.end_to_end: dict[Lane, Any] = {
            lane: end_to_end.labels(**ids, lane=lane) for lane in LANES
        }
        self.queue_wait = histogram(
            "evalstream_queue_wait_seconds", "Consumed until sent to the engine.", _E2E_BUCKETS
        ).labels(**ids)
        self.engine_latency = histogram(
            "evalstream_engine_latency_seconds", "One engine call.", _ENGINE_BUCKETS
        ).labels(**ids)
        self.batch_size = histogram(
            "evalstream_batch_size_requests", "Requests per micro-batch.", _BATCH_BUCKETS
        ).labels(**ids)

    def build_info(self, version: str, backend: str, model: str) -> None:
        """Sets the constant build-info series."""
        self._build_info.labels(**self.ids, version=version, backend=backend, model=model).set(1)

    def result(self, status: str, model: str, variant: str | None) -> None:
        """Counts one published result."""
        self.completed.labels(**self.ids, status=status, model=model, variant=variant or "").inc()

    def dead_letter(self, reason: str) -> None:
        """Counts one dead letter."""
        self.dead_lettered.labels(**self.ids, reason=reason).inc()

    def retry(self, reason: str) -> None:
        """Counts one retried engine call."""
        self.retries.labels(**self.ids, reason=reason).inc()

    def cache_lookup(self, outcome: str) -> None:
        """Counts one result-cache lookup (``hit`` or ``miss``)."""
        self.cache_lookups.labels(outcome=outcome, **self.ids).inc()

    def invalid_output(self, reason: str) -> None:
        """Counts one reply published as an error for its content, by reason."""
        self.invalid_outputs.labels(reason=reason, **self.ids).inc()

    def rebalance(self, kind: str, partitions: int) -> None:
        """Counts assignment changes (``assigned``, ``revoked``, ``lost``)."""
        self.rebalances.labels(**self.ids, kind=kind).inc(partitions)

    def tokens(self, model: str, prompt: int, completion: int) -> None:
        """Counts engine tokens."""
        self.prompt_tokens.labels(**self.ids, model=model).inc(prompt)
        self.completion_tokens.labels(**self.ids, model=model).inc(completion)


class KafkaStatsCollector(Collector):
    """Consumer lag and committed offsets per partition, from librdkafka statistics.

    librdkafka emits a JSON statistics document every ``statistics.interval.ms``;
    `update` keeps the latest, and `collect` turns it into gauges at scrape time.
    """

    def __init__(self, ids: dict[str, str]) -> None:
        self._ids = ids
        self._lock = threading.Lock()
        self._partitions: list[tuple[str, str, int, int]] = []

    def update(self, stats_json: str) -> None:
        """The librdkafka ``stats_cb``: parses and keeps the per-partition figures."""
        stats: dict[str, Any] = json.loads(stats_json)
        rows = []
        for topic, tstats in stats.get("topics", {}).items():
            for pid, p in tstats.get("partitions", {}).items():
                if pid == "-1" or p.get("fetch_state") in (None, "none", "stopped"):
                    continue
                rows.append(
                    (topic, pid, int(p.get("consumer_lag", -1)), int(p.get("committed_offset", -1)))
                )
        with self._lock:
            self._partitions = rows

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = [*_ID, "topic", "partition"]
        lag = GaugeMetricFamily(
            "evalstream_consumer_lag_messages", "Messages behind the partition end.", labels=labels
        )
        committed = GaugeMetricFamily(
            "evalstream_committed_offset", "Last committed offset per partition.", labels=labels
        )
        with self._lock:
            rows = list(self._partitions)
        for topic, pid, lag_value, committed_value in rows:
            values = [self._ids["worker"], self._ids["gpu"], topic, pid]
            if lag_value >= 0:
                lag.add_metric(values, lag_value)
            if committed_value >= 0:
                committed.add_metric(values, committed_value)
        yield lag
        yield committed
