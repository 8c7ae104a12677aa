"""The worker's Kafka clients, opened where the process starts and passed to the worker.

One consumer (`RequestSource`, its own thread), one idempotent producer for results and
dead letters (`ResultSink`), and the `CommitPath` of the configured delivery guarantee
(exactly-once adds a transactional producer fenced by the consumer group's metadata). Every
client reports a fatal error to the `Supervisor` through its ``error_cb``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from consumer.cache_topic import CacheTopic
from consumer.committer import CommitPath, OffsetPath
from consumer.kafka_log import KafkaLog
from consumer.lanes import lane_topics
from consumer.metrics import Metrics
from consumer.request_source import RequestSource
from consumer.result_cache import ResultCache
from consumer.result_sink import ResultSink
from consumer.settings import Settings
from consumer.supervisor import Supervisor
from consumer.transactions import TransactionalPath


@dataclass(frozen=True)
class KafkaClients:
    """The clients of one worker; the worker closes them when it stops."""

    source: RequestSource
    sink: ResultSink
    path: CommitPath
    log: KafkaLog
    supervisor: Supervisor
    cache: ResultCache | None = None
    cache_topic: CacheTopic | None = field(default=None)


def open_clients(
    settings: Settings,
    metrics: Metrics,
    loop: asyncio.AbstractEventLoop,
    supervisor: Supervisor | None = None,
) -> KafkaClients:
    """Creates the clients; the source subscribes only when the worker starts it.

    Args:
        settings: the whole configuration.
        metrics: receives librdkafka's statistics (consumer lag).
        loop: the event loop that awaits delivery reports.
        supervisor: receives every client's fatal errors (a new one by default).
    """
    supervisor = supervisor or Supervisor(loop)
    kafka = settings.kafka
    log = KafkaLog(kafka.bootstrap_servers)
    common: dict[str, Any] = {**kafka.client_config(), "logger": log.logger}
    exactly_once = kafka.processing_guarantee == "exactly_once"
    source = RequestSource(
        {
            **common,
            # Exactly-once: requests of aborted upstream transactions are never read.
            "isolation.level": "read_committed" if exactly_once else "read_uncommitted",
            "group.id": kafka.group_id,
            "client.id": settings.worker_id,
            "statistics.interval.ms": 5000,
            "stats_cb": metrics.kafka_stats.update,
            "error_cb": supervisor.error_cb("the request source"),
        },
        lane_topics(kafka.requests_topic, settings.lanes.interactive_topic),
    )
    sink = ResultSink(
        common,
        loop,
        results_topic=kafka.results_topic,
        dlq_topic=kafka.dlq_topic,
        worker_id=settings.worker_id,
        on_fatal=lambda cause: supervisor.thread_died("the results producer", cause),
    )
    path = _commit_path(settings, common, source, sink, supervisor)
    if not settings.cache.enabled:
        return KafkaClients(source, sink, path, log, supervisor)
    topic = CacheTopic(
        {**common, "error_cb": supervisor.error_cb("the cache topic")},
        settings.cache.topic,
        on_fatal=lambda cause: supervisor.thread_died("the cache topic", cause),
    )
    cache = ResultCache(settings.cache.max_entries, topic.publish)
    topic.start(cache, settings.cache.load_timeout_s)  # before any request is taken
    return KafkaClients(source, sink, path, log, supervisor, cache, topic)


def _commit_path(
    settings: Settings,
    common: dict[str, Any],
    source: RequestSource,
    sink: ResultSink,
    supervisor: Supervisor,
) -> CommitPath:
    """The commit path of ``kafka.processing_guarantee``."""
    kafka = settings.kafka
    if kafka.processing_guarantee != "exactly_once":
        return OffsetPath(source, sink)
    return TransactionalPath(
        {**common, "error_cb": supervisor.error_cb("the transactional producer")},
        # Stable per worker, so a restarted worker fences its previous incarnation.
        f"{kafka.group_id}-{settings.worker_id}",
        source.group_metadata,
        sink.topic_of,
        [kafka.results_topic, kafka.dlq_topic],
        settings.worker_id,
    )
