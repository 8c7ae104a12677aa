"""The worker's Kafka clients, configured from the settings in one place.

One consumer (`RequestSource`, its own thread), one idempotent producer for results and
dead letters (`ResultSink`), and in exactly-once mode a transactional producer
(`TransactionalCommitter`) fenced by the consumer group's metadata.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from consumer.metrics import Metrics
from consumer.request_source import RequestSource, SourceListener
from consumer.result_sink import ResultSink
from consumer.settings import Settings
from consumer.transactions import TransactionalCommitter


@dataclass
class KafkaClients:
    """The clients of one worker; ``txn`` is None in at-least-once mode."""

    source: RequestSource
    sink: ResultSink
    txn: TransactionalCommitter | None


def open_clients(
    settings: Settings,
    listener: SourceListener,
    demand: Callable[[], int],
    metrics: Metrics,
    loop: asyncio.AbstractEventLoop,
) -> KafkaClients:
    """Creates the clients (the source is not started yet)."""
    kafka = settings.kafka
    common = kafka.client_config()
    exactly_once = kafka.processing_guarantee == "exactly_once"
    source = RequestSource(
        {
            **common,
            "isolation.level": "read_committed" if exactly_once else "read_uncommitted",
            "group.id": kafka.group_id,
            "client.id": settings.worker_id,
            "statistics.interval.ms": 5000,
            "stats_cb": metrics.kafka_stats.update,
        },
        kafka.requests_topic,
        listener,
        demand,
        # Resume with half the buffer still full: it must outlast the refetch (see buffer).
        resume_at=lambda: max(1, settings.window.buffer // 2),
    )
    txn = None
    if exactly_once:
        txn = TransactionalCommitter(
            common,
            f"{kafka.group_id}-{settings.worker_id}",
            source.group_metadata,
            lambda o: kafka.results_topic if o.destination == "result" else kafka.dlq_topic,
        )
    return KafkaClients(source, ResultSink(common, loop), txn)
