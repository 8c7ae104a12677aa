"""Exactly-once mode: results and source offsets committed in one Kafka transaction.

With ``kafka.processing_guarantee = exactly_once`` a result is not produced when it is
ready; it is held. Each commit of the `consumer.committer.Committer` runs one transaction
that (1) produces the held results whose offsets lie below each partition's lowest
incomplete offset, (2) adds those offsets for the consumer group (KIP-447: the group's
metadata fences zombie workers), (3) commits. A result completed out of order waits for the
offsets below it, so a ``read_committed`` consumer never sees a result whose source offset a
crash would deliver again: no duplicates, at the cost of one transaction per interval.

A result over the size limit must not fence the producer (a fatal error) nor abort every
transaction after it: the failure table's ``publish`` rule makes it a dead letter, in the same
transaction (refused by this producer's ``message.max.bytes``), or in the next one (refused by
the broker for the topic, which aborts the transaction it was in).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer, TopicPartition

from consumer.deadline import Deadline
from consumer.errors import CommitError, MessageTooLarge
from consumer.partitions import PartitionKey
from consumer.records import HEADER_PREFIX, Outcome, dead_letter

log = logging.getLogger(__name__)

_INIT_TIMEOUT_S = 30.0
_MIN_STEP_S = 1.0  # a transaction step always gets this long, even past the deadline
_TOO_LARGE = frozenset({KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE})


class TransactionalPath:
    """Holds outcomes and writes them with their offsets, one transaction at a time.

    A `consumer.committer.CommitPath`: the consumer itself never commits in this mode.

    Args:
        config: librdkafka producer configuration (bootstrap, security, ``error_cb``).
        transactional_id: stable per worker (``<group>-<worker id>``), so a restarted
            worker fences its previous incarnation.
        group_metadata: returns the consumer's group metadata (generation, member).
        topic_of: maps an outcome to its destination topic.
        worker_id: recorded in the dead letters made here (oversized results).
    """

    def __init__(
        self,
        config: dict[str, Any],
        transactional_id: str,
        group_metadata: Callable[[], object],
        topic_of: Callable[[Outcome], str],
        worker_id: str = "",
    ) -> None:
        self._producer = Producer(
            {**config, "transactional.id": transactional_id, "enable.idempotence": True}
        )
        self._producer.init_transactions(_INIT_TIMEOUT_S)
        self._group_metadata = group_metadata
        self._topic_of = topic_of
        self._worker_id = worker_id
        self._held: list[Outcome] = []
        # Held outcomes the broker refused for size, by id (kept alive here, so ids stay unique).
        self._refused: dict[int, Outcome] = {}
        self._fenced = False

    async def deliver(self, outcome: Outcome) -> Outcome:
        """Holds the outcome: it is produced in the transaction that commits its offset."""
        self._held.append(outcome)
        return outcome

    def forget(self, keys: set[PartitionKey]) -> None:
        """Drops held outcomes of partitions that left this worker."""
        self._held = [o for o in self._held if o.job.source not in keys]
        self._refused = {i: o for i, o in self._refused.items() if o.job.source not in keys}

    async def write(
        self, offsets: dict[PartitionKey, int], deadline: Deadline, *, in_rebalance: bool
    ) -> bool:
        """Commits the held outcomes below ``offsets`` together with those offsets.

        An abortable failure aborts and keeps the outcomes held for the next commit (their
        holds in the ledger keep the partitions paused meanwhile); it returns False.

        Raises:
            CommitError: a fatal or fencing error (the worker must stop; a restart resumes
                from the last committed transaction).
        """
        del in_rebalance  # the transaction carries the offsets whether or not a rebalance runs
        if self._fenced:
            raise CommitError("the transactional producer was fenced earlier")
        ready = [o for o in self._held if o.job.offset < offsets.get(o.job.source, -1)]
        ready_ids = {id(o) for o in ready}
        self._held = [o for o in self._held if id(o) not in ready_ids]
        ready = [self._sized(o) for o in ready]
        timeout = deadline.remaining(_MIN_STEP_S)
        running = asyncio.ensure_future(
            asyncio.to_thread(self._transaction, ready, offsets, timeout)
        )
        try:
            # Shielded: a transaction, once begun, is finished even if we are cancelled.
            try:
                await asyncio.shield(running)
            except asyncio.CancelledError:
                await running
                raise
        except KafkaException as exc:
            if not exc.args[0].txn_requires_abort():
                self._fenced = True
                raise CommitError(f"transactional commit failed: {exc}") from exc
            log.warning("transaction aborted, retrying next interval: %s", exc)
            await asyncio.to_thread(self._producer.abort_transaction, timeout)
            self._held.extend(ready)
            return False
        return True

    def _sized(self, outcome: Outcome) -> Outcome:
        """The outcome, or its dead letter where the broker refused it for its size."""
        if self._refused.pop(id(outcome), None) is None:
            return outcome
        return self._dead_letter(outcome, "refused by the broker")

    def _dead_letter(self, outcome: Outcome, why: str) -> Outcome:
        """An oversized result becomes a dead letter; a dead letter loses its value."""
        job = outcome.job
        error = MessageTooLarge(f"{outcome.destination} of {job.request_id} too large: {why}")
        log.error("%s; sending a dead letter", error.message)
        if outcome.destination == "result":
            return dead_letter(job, error, self._worker_id)
        size = str(len(job.value or b"")).encode()
        headers = [h for h in outcome.headers or [] if h[0].startswith(HEADER_PREFIX)]
        headers.append((HEADER_PREFIX + "value.omitted", size))
        return Outcome(job, "dead_letter", None, headers, outcome.status, error)

    def _transaction(
        self, ready: list[Outcome], offsets: dict[PartitionKey, int], timeout: float
    ) -> None:
        """The steps of one transaction, in order (runs in a worker thread)."""
        self._producer.begin_transaction()  # 1. open
        for i, outcome in enumerate(ready):  # 2. the results whose offsets are all done
            ready[i] = self._produce(outcome)
        self._producer.poll(0)
        positions = [TopicPartition(k.topic, k.partition, o) for k, o in offsets.items()]
        if positions:  # 3. the source offsets, fenced by the group's generation
            self._producer.send_offsets_to_transaction(positions, self._group_metadata(), timeout)
        self._producer.commit_transaction(timeout)  # 4. results and offsets at once

    def _produce(self, outcome: Outcome) -> Outcome:
        """Produces one outcome; one this producer refuses for size goes as a dead letter."""
        for _ in range(3):  # result → dead letter → dead letter without its value
            try:
                self._producer.produce(
                    self._topic_of(outcome), value=outcome.value, key=outcome.job.key,
                    headers=list(outcome.headers or []), on_delivery=self._reported(outcome),
                )  # fmt: skip
                return outcome
            except KafkaException as exc:
                if exc.args[0].code() not in _TOO_LARGE:
                    raise
                outcome = self._dead_letter(outcome, "over message.max.bytes")
        raise AssertionError("a dead letter without its value is never too large")

    def _reported(self, outcome: Outcome) -> Callable[[KafkaError | None, Message], None]:
        def on_delivery(error: KafkaError | None, _message: Message) -> None:
            if error is not None and error.code() in _TOO_LARGE:
                self._refused[id(outcome)] = outcome  # aborts; the next one sends a dead letter

        return on_delivery

    def close(self, deadline: Deadline) -> None:
        """Aborts nothing (an open transaction is never left between commits); flushes."""
        if not self._fenced:
            self._producer.flush(deadline.remaining(_MIN_STEP_S))
