"""Intake: where a message read from Kafka becomes a request waiting for the engine.

The consumer thread hands messages over (`on_messages`, holds already taken in the ledger);
on the event loop each one is accepted by the `RequestLedger` (its partition owned, its offset
new), counted, decoded (`consumer.jobs`) and routed to a model (`consumer.router`). A valid
request is queued in the `MicroBatcher`; anything else is dead-lettered at once, as the failure
table's ``intake`` rules say.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from confluent_kafka import Message

from consumer.batcher import MicroBatcher
from consumer.errors import EvalstreamError, RoutingError
from consumer.jobs import decode_job, job_from_message
from consumer.lanes import BULK, Lane
from consumer.ledger import RequestLedger
from consumer.metrics import Metrics
from consumer.partitions import PartitionKey
from consumer.publisher import OutcomePublisher
from consumer.records import dead_letter
from consumer.router import ModelRouter


class RequestIntake:
    """Accepts, decodes and routes handed-over messages.

    Args:
        loop: the event loop everything after the hand-over runs on.
        ledger: the request ledger.
        batcher: where valid requests wait for a slot.
        publisher: where dead letters go.
        router: model routing.
        metrics: the metrics catalogue.
        lanes: the lane of each consumed topic.
        max_bytes: the largest request value accepted (``kafka.max_request_bytes``).
        worker_id: recorded in dead letters.
        on_failure: told (part, cause) when taking messages in raises (the supervisor's
            `fail`): their holds and offsets would otherwise stay open for good.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        ledger: RequestLedger,
        batcher: MicroBatcher,
        publisher: OutcomePublisher,
        router: ModelRouter,
        metrics: Metrics,
        *,
        lanes: dict[str, Lane],
        max_bytes: int,
        worker_id: str,
        on_failure: Callable[[str, str], None] = lambda part, cause: None,
    ) -> None:
        self._loop = loop
        self._ledger = ledger
        self._batcher = batcher
        self._publisher = publisher
        self._router = router
        self._metrics = metrics
        self._lanes = lanes
        self._max_bytes = max_bytes
        self._worker_id = worker_id
        self._on_failure = on_failure

    def on_messages(self, messages: list[Message], keys: list[PartitionKey]) -> None:
        """Called from the consumer thread: hands the messages over to the loop."""
        self._loop.call_soon_threadsafe(self._accept_all, messages, keys)

    def _accept_all(self, messages: list[Message], keys: list[PartitionKey]) -> None:
        try:
            self.accept(messages, keys)
        except Exception as exc:
            self._on_failure("the intake", f"{type(exc).__name__}: {exc}")

    def accept(self, messages: list[Message], keys: list[PartitionKey]) -> None:
        """Takes handed-over messages in (event loop)."""
        for message, key in zip(messages, keys, strict=True):
            job = job_from_message(message, key, self._lanes.get(key.topic, BULK))
            if not self._ledger.accept(job):
                continue
            self._metrics.consumed[job.lane].inc()
            error: EvalstreamError | None = decode_job(job, self._max_bytes)
            if error is None:
                assert job.request is not None
                try:
                    job.route = self._router.route(job.request)
                except RoutingError as exc:
                    error = exc
            if error is None:
                self._ledger.queued(job)
                self._batcher.add(job)
            else:
                self._publisher.emit(dead_letter(job, error, self._worker_id))
