"""Publishes final outcomes through the committer and reports their acknowledgement.

An outcome's offset completes once the `Committer` took it: acknowledged by the broker
(at-least-once), or held for the transaction that commits it with its offset
(exactly-once). The outcome of a job whose partition was revoked is never published.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from consumer.errors import SinkFatal
from consumer.failure_table import caused_by_input
from consumer.ledger import RequestLedger
from consumer.metrics import Metrics
from consumer.records import Outcome

log = logging.getLogger(__name__)


class Delivery(Protocol):
    """Takes outcomes (`consumer.committer.Committer`)."""

    async def deliver(self, outcome: Outcome) -> Outcome:
        """Returns (the outcome as sent) once its offset may complete."""


class OutcomePublisher:
    """Sends outcomes and reports them acknowledged to the ledger; runs on the event loop.

    Args:
        ledger: the request ledger (owned partitions; acknowledgements).
        committer: takes each outcome (sends it, or holds it for a transaction).
        metrics: the metrics catalogue.
        on_failure: told (part, cause) when a delivery task raises (the supervisor's `fail`).
    """

    def __init__(
        self,
        ledger: RequestLedger,
        committer: Delivery,
        metrics: Metrics,
        on_failure: Callable[[str, str], None] = lambda part, cause: None,
    ) -> None:
        self._ledger = ledger
        self._committer = committer
        self._metrics = metrics
        self._on_failure = on_failure

    def emit(self, outcome: Outcome) -> None:
        """Starts publishing ``outcome`` unless its partition is no longer ours."""
        job = outcome.job
        if not self._ledger.owns(job.source):
            return  # a revoked epoch: never produce its result
        if outcome.destination == "dead_letter":
            _log_dead_letter(outcome)
        task = asyncio.create_task(self._deliver(outcome))
        self._ledger.attach((job.source,), task)
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (error := task.exception()) is not None:
            self._on_failure("a delivery task", f"{type(error).__name__}: {error}")

    async def _deliver(self, outcome: Outcome) -> None:
        job = outcome.job
        try:
            outcome = await self._committer.deliver(outcome)
        except SinkFatal:
            # The supervisor stops the worker (the producer's error_cb); the offset stays open
            # and the request is read again by the next owner.
            return
        self._count(outcome)
        self._ledger.acknowledged(job)

    def _count(self, outcome: Outcome) -> None:
        job = outcome.job
        if outcome.destination == "result":
            route = job.route
            model, variant = (route.model, route.variant) if route else ("", None)
            self._metrics.result(outcome.status, model, variant)
        else:
            self._metrics.dead_letter(outcome.status)
        self._metrics.end_to_end[job.lane].observe(max(0.0, time.time() - job.timestamp_s))


def _log_dead_letter(outcome: Outcome) -> None:
    """One line per dead letter: a warning where the input caused it, else an error."""
    job, error = outcome.job, outcome.error
    log.log(
        logging.WARNING if caused_by_input(error) else logging.ERROR,
        "dead letter: %s",
        error.message if error is not None else outcome.status,
        extra={
            "request_id": job.request_id,
            "partition": job.source.partition,
            "offset": job.offset,
            "reason": outcome.status,
        },
    )
