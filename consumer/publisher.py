"""Publishes final outcomes through the committer and completes their offsets.

An outcome's offset completes once the `Committer` took it: acknowledged by the broker
(at-least-once), or held for the transaction that commits it with its offset
(exactly-once). The outcome of a job whose partition was revoked is never published.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter

from consumer.committer import Committer
from consumer.errors import DecodeError, RoutingError
from consumer.jobs import Job
from consumer.lanes import LANES, Lane
from consumer.metrics import Metrics
from consumer.partitions import PartitionRegistry
from consumer.records import Outcome

log = logging.getLogger(__name__)


class OutcomePublisher:
    """Sends outcomes and completes their offsets; runs on the event loop.

    Args:
        partitions: the owned partitions (outcomes of others are dropped).
        committer: takes each outcome (sends it, or holds it for a transaction).
        metrics: the metrics catalogue.
    """

    def __init__(
        self, partitions: PartitionRegistry, committer: Committer, metrics: Metrics
    ) -> None:
        self._partitions = partitions
        self._committer = committer
        self._metrics = metrics
        # Outcomes not yet acknowledged, by lane: they count against the demand (read by the
        # consumer thread, so every key exists from the start).
        self._pending: Counter[Lane] = Counter(dict.fromkeys(LANES, 0))

    @property
    def pending(self) -> int:
        """Outcomes sent and not yet acknowledged."""
        return self._pending.total()

    def pending_of(self, lane: Lane) -> int:
        """Outcomes of ``lane`` sent and not yet acknowledged."""
        return self._pending[lane]

    def emit(self, outcome: Outcome) -> None:
        """Starts publishing ``outcome`` unless its partition is no longer ours."""
        job = outcome.job
        if job.source not in self._partitions:
            return  # a revoked epoch: never produce its result
        if outcome.destination == "dead_letter":
            _log_dead_letter(job, outcome)
        task = asyncio.create_task(self._deliver(outcome))
        self._pending[job.lane] += 1
        task.add_done_callback(lambda _task: self._done(job.lane))
        self._partitions.attach((job.source,), task)

    def _done(self, lane: Lane) -> None:
        self._pending[lane] -= 1

    async def _deliver(self, outcome: Outcome) -> None:
        job = outcome.job
        outcome = await self._committer.deliver(outcome)
        self._count(outcome)
        self._partitions.complete(job.source, job.offset)

    def _count(self, outcome: Outcome) -> None:
        job = outcome.job
        if outcome.destination == "result":
            route = job.route
            model, variant = (route.model, route.variant) if route else ("", None)
            self._metrics.result(outcome.status, model, variant)
        else:
            self._metrics.dead_letter(outcome.status)
        self._metrics.end_to_end[job.lane].observe(max(0.0, time.time() - job.timestamp_s))


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
