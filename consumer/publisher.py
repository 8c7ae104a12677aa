"""Publishes final outcomes: results to the results topic, dead letters to theirs.

An outcome's offset completes only once the broker acknowledged it (at-least-once), or
once it is held for the transaction that will commit it with its offset (exactly-once).
The outcome of a job whose partition was revoked is never published.
"""

from __future__ import annotations

import asyncio
import logging
import time

from consumer.errors import DecodeError, MessageTooLarge, RoutingError
from consumer.jobs import Job
from consumer.metrics import Metrics
from consumer.partitions import PartitionRegistry
from consumer.records import HEADER_PREFIX, Outcome, dead_letter
from consumer.result_sink import ResultSink
from consumer.settings import KafkaSettings
from consumer.transactions import TransactionalCommitter

log = logging.getLogger(__name__)


class OutcomePublisher:
    """Sends outcomes and completes their offsets.

    Args:
        kafka: topic names.
        partitions: the owned partitions (outcomes of others are dropped).
        metrics: the metrics catalogue.
        worker_id: recorded in the dead letters it makes itself.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        partitions: PartitionRegistry,
        metrics: Metrics,
        worker_id: str = "",
    ) -> None:
        self._kafka = kafka
        self._worker_id = worker_id
        self._partitions = partitions
        self._metrics = metrics
        self.sink: ResultSink | None = None
        self.txn: TransactionalCommitter | None = None
        self.pending = 0  # outcomes not yet acknowledged: they count against the demand

    def emit(self, outcome: Outcome) -> None:
        """Starts publishing ``outcome`` unless its partition is no longer ours."""
        job = outcome.job
        if job.source not in self._partitions:
            return  # a revoked epoch: never produce its result
        if outcome.destination == "dead_letter":
            _log_dead_letter(job, outcome)
        task = asyncio.create_task(self._deliver(outcome))
        self.pending += 1
        task.add_done_callback(self._done)
        self._partitions.attach((job.source,), task)

    def _done(self, _task: asyncio.Task[None]) -> None:
        self.pending -= 1

    async def _deliver(self, outcome: Outcome) -> None:
        job = outcome.job
        if self.txn is not None:
            # Exactly once: produced later, in the transaction that commits its offset.
            self.txn.hold(outcome)
        else:
            try:
                await self._send(outcome)
            except MessageTooLarge as exc:
                outcome = await self._send_oversized(outcome, exc)
        self._count(outcome)
        self._partitions.complete(job.source, job.offset)

    async def _send(self, outcome: Outcome) -> None:
        assert self.sink is not None
        job, kafka = outcome.job, self._kafka
        if outcome.destination == "result":
            await self.sink.send(kafka.results_topic, job.key, outcome.value, None)
        else:
            await self.sink.send(kafka.dlq_topic, job.key, outcome.value, outcome.headers)

    async def _send_oversized(self, outcome: Outcome, error: MessageTooLarge) -> Outcome:
        """A message over the topic's size limit must not block its partition: a result
        becomes a dead letter; a dead letter goes without its value, its headers saying
        where the original still lies (source topic, partition, offset)."""
        job, worker = outcome.job, self._worker_id
        where = {
            "request_id": job.request_id,
            "partition": job.source.partition,
            "offset": job.offset,
        }
        log.error("%s; sending a dead letter without the value", error.message, extra=where)
        if outcome.destination == "result":
            outcome = dead_letter(job, error, worker)
            try:
                await self._send(outcome)
                return outcome
            except MessageTooLarge:
                pass
        size = str(len(job.value or b"")).encode()
        headers = [h for h in outcome.headers or [] if h[0].startswith(HEADER_PREFIX)]
        headers.append((HEADER_PREFIX + "value.omitted", size))
        slim = Outcome(job, "dead_letter", None, headers, outcome.status)
        await self._send(slim)
        return slim

    def _count(self, outcome: Outcome) -> None:
        job = outcome.job
        if outcome.destination == "result":
            route = job.route
            model, variant = (route.model, route.variant) if route else ("", None)
            self._metrics.result(outcome.status, model, variant)
        else:
            self._metrics.dead_letter(outcome.status)
        self._metrics.end_to_end.observe(max(0.0, time.time() - job.timestamp_s))


def _log_dead_letter(job: Job, outcome: Outcome) -> None:
    headers = dict(outcome.headers or [])
    message = headers.get("evalstream.error.message", b"").decode("utf-8", "replace")
    error_class = headers.get("evalstream.error.class", b"").decode()
    expected = error_class in {DecodeError.__name__, RoutingError.__name__}
    log.log(
        logging.WARNING if expected else logging.ERROR,
        "dead letter: %s",
        message,
        extra={
            "request_id": job.request_id,
            "partition": job.source.partition,
            "offset": job.offset,
            "reason": outcome.status,
        },
    )
