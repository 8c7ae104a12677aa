"""Exactly-once mode: results and source offsets committed in one Kafka transaction.

With ``kafka.processing_guarantee = exactly_once`` a result is not produced when it is
ready; it is held. Each commit of the `consumer.committer.Committer` runs one transaction
that (1) produces the held results whose offsets lie below each partition's lowest
incomplete offset, (2) adds those offsets for the consumer group (KIP-447: the group's
metadata fences zombie workers), (3) commits. A result completed out of order waits for the
offsets below it, so a ``read_committed`` consumer never sees a result whose source offset a
crash would deliver again: no duplicates, at the cost of one transaction per interval.

A result over the size limit must not fence the producer nor abort every transaction after it:
the failure table's ``publish`` rule makes it a dead letter. Over this producer's
``message.max.bytes``, or over the topic's ``max.message.bytes`` (read from the broker at start),
it is replaced in the same transaction before it is sent. Should the broker refuse one all the
same (a topic whose limit changed), the transaction aborts, and the broker refused the whole request
it was in, so every message of that request is a *suspect*; the next transaction produces each
suspect alone (flushed before the next one), so a refusal names the message that is too large,
and the one after sends that message's dead letter instead. Any other error that is not fatal
aborts the transaction and keeps its outcomes held for the next interval.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer, TopicPartition

# Documented in confluent_kafka.admin, which imports them without re-exporting them.
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType  # type: ignore[attr-defined]

from consumer.deadline import Deadline
from consumer.errors import CommitError, MessageTooLarge
from consumer.partitions import PartitionKey
from consumer.records import HEADER_PREFIX, Outcome, dead_letter

log = logging.getLogger(__name__)

_INIT_TIMEOUT_S = 30.0
_MIN_STEP_S = 1.0  # a transaction step always gets this long, even past the deadline
_TOO_LARGE = frozenset({KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE})
# A record batch of one message: its header (61 bytes) and the record's varints, with room.
_BATCH_OVERHEAD = 256


class TransactionalPath:
    """Holds outcomes and writes them with their offsets, one transaction at a time.

    A `consumer.committer.CommitPath`: the consumer itself never commits in this mode.

    Args:
        config: librdkafka producer configuration (bootstrap, security, ``error_cb``).
        transactional_id: stable per worker (``<group>-<worker id>``), so a restarted
            worker fences its previous incarnation.
        group_metadata: returns the consumer's group metadata (generation, member).
        topic_of: maps an outcome to its destination topic.
        topics: the destination topics (their size limits are read once).
        worker_id: recorded in the dead letters made here (oversized results).
    """

    def __init__(
        self,
        config: dict[str, Any],
        transactional_id: str,
        group_metadata: Callable[[], object],
        topic_of: Callable[[Outcome], str],
        topics: list[str] | None = None,
        worker_id: str = "",
    ) -> None:
        self._producer = Producer(
            {**config, "transactional.id": transactional_id, "enable.idempotence": True}
        )
        self._producer.init_transactions(_INIT_TIMEOUT_S)
        self._limits = topic_limits(config, topics or [])
        self._group_metadata = group_metadata
        self._topic_of = topic_of
        self._worker_id = worker_id
        self._held: list[Outcome] = []
        # Held outcomes by id (kept alive here, so ids stay unique): refused by the broker for
        # size among others (produced alone next time), and refused alone (dead-lettered).
        self._suspects: dict[int, Outcome] = {}
        self._too_large: dict[int, Outcome] = {}
        self._fenced = False

    async def deliver(self, outcome: Outcome) -> Outcome:
        """Holds the outcome: it is produced in the transaction that commits its offset."""
        self._held.append(outcome)
        return outcome

    def forget(self, keys: set[PartitionKey]) -> None:
        """Drops held outcomes of partitions that left this worker."""
        self._held = [o for o in self._held if o.job.source not in keys]
        for marks in (self._suspects, self._too_large):
            for i in [i for i, o in marks.items() if o.job.source in keys]:
                del marks[i]

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
        ready.sort(key=lambda o: id(o) not in self._suspects)  # suspects first, each alone
        running = asyncio.ensure_future(
            asyncio.to_thread(self._transaction, ready, offsets, deadline)
        )
        try:
            # Shielded: a transaction, once begun, is finished even if we are cancelled.
            try:
                await asyncio.shield(running)
            except asyncio.CancelledError:
                await running
                raise
        except KafkaException as exc:
            if exc.args[0].fatal():
                self._fenced = True
                raise CommitError(f"transactional commit failed: {exc}") from exc
            log.warning("transaction aborted, retrying next interval: %s", exc)
            await self._abort(deadline.remaining(_MIN_STEP_S))
            self._held.extend(ready)
            return False
        return True

    async def _abort(self, seconds: float) -> None:
        try:
            await asyncio.to_thread(self._producer.abort_transaction, seconds)
        except KafkaException as exc:
            self._fenced = True  # a transaction that can neither commit nor abort
            raise CommitError(f"transaction could not be aborted: {exc}") from exc

    def _sized(self, outcome: Outcome) -> Outcome:
        """The outcome, or its dead letter where the broker refused it for its size."""
        if self._too_large.pop(id(outcome), None) is None:
            return outcome
        return self._dead_letter(outcome, "refused by the broker")

    def _dead_letter(self, outcome: Outcome, why: str) -> Outcome:
        """An oversized result becomes a dead letter; a dead letter loses its value."""
        job = outcome.job
        error = MessageTooLarge(f"{outcome.destination} of {job.request_id} too large: {why}")
        if outcome.destination == "result":
            log.error("%s; sending a dead letter", error.message)
            return dead_letter(job, error, self._worker_id)
        log.error("%s; sending it without the value", error.message)
        size = str(len(job.value or b"")).encode()
        headers = [h for h in outcome.headers or [] if h[0].startswith(HEADER_PREFIX)]
        headers.append((HEADER_PREFIX + "value.omitted", size))
        return Outcome(job, "dead_letter", None, headers, outcome.status, error)

    def _transaction(
        self, ready: list[Outcome], offsets: dict[PartitionKey, int], deadline: Deadline
    ) -> None:
        """The steps of one transaction, in order (runs in a worker thread)."""
        timeout = deadline.remaining(_MIN_STEP_S)
        self._producer.begin_transaction()  # 1. open
        for i, outcome in enumerate(ready):  # 2. the results whose offsets are all done
            ready[i] = self._produce(outcome)
            if id(outcome) in self._suspects:  # alone in its request: the refusal is its own
                self._producer.flush(timeout)
        self._producer.poll(0)
        positions = [TopicPartition(k.topic, k.partition, o) for k, o in offsets.items()]
        if positions:  # 3. the source offsets, fenced by the group's generation
            self._producer.send_offsets_to_transaction(positions, self._group_metadata(), timeout)
        self._commit(deadline)  # 4. results and offsets at once

    def _commit(self, deadline: Deadline) -> None:
        """Commits; a commit that timed out goes on in the background and is called again
        (an abort would conflict with it) until it ends or the deadline passes."""
        while True:
            try:
                self._producer.commit_transaction(deadline.remaining(_MIN_STEP_S))
                return
            except KafkaException as exc:
                error = exc.args[0]
                timed_out = error.code() == KafkaError._TIMED_OUT
                if not timed_out or error.txn_requires_abort() or deadline.expired:
                    raise
                log.warning("the transaction's commit is still running")

    def _produce(self, outcome: Outcome) -> Outcome:
        """Produces one outcome; one this producer refuses for size goes as a dead letter."""
        for _ in range(3):  # result → dead letter → dead letter without its value
            if self._over_limit(outcome):
                outcome = self._dead_letter(outcome, "over the topic's max.message.bytes")
                continue
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

    def _over_limit(self, outcome: Outcome) -> bool:
        limit = self._limits.get(self._topic_of(outcome))
        if limit is None:
            return False
        headers = sum(len(k) + len(v or b"") for k, v in outcome.headers or [])
        size = len(outcome.value or b"") + len(outcome.job.key or b"") + headers
        return size + _BATCH_OVERHEAD > limit

    def _reported(self, outcome: Outcome) -> Callable[[KafkaError | None, Message], None]:
        def on_delivery(error: KafkaError | None, _message: Message) -> None:
            key = id(outcome)
            if error is None:
                self._suspects.pop(key, None)  # the broker took it: not too large
            elif error.code() in _TOO_LARGE:
                if self._suspects.pop(key, None) is not None:
                    self._too_large[key] = outcome  # refused alone: it is the large one
                else:
                    self._suspects[key] = outcome  # refused with others: find out alone

        return on_delivery

    def close(self, deadline: Deadline) -> None:
        """Aborts nothing (an open transaction is never left between commits); flushes."""
        if not self._fenced:
            self._producer.flush(deadline.remaining(_MIN_STEP_S))


def topic_limits(config: dict[str, Any], topics: list[str]) -> dict[str, int]:
    """Each topic's ``max.message.bytes``, where the broker tells (a missing topic has none)."""
    admin = AdminClient({k: v for k, v in config.items() if k != "error_cb"})
    resources = [ConfigResource(ResourceType.TOPIC, topic) for topic in topics]
    limits: dict[str, int] = {}
    if not resources:
        return limits
    for resource, future in admin.describe_configs(resources).items():
        try:
            entry = future.result(timeout=_INIT_TIMEOUT_S).get("max.message.bytes")
        except KafkaException as exc:
            log.info("size limit of %s unknown (%s)", resource.name, exc)
            continue
        if entry is not None and entry.value is not None:
            limits[resource.name] = int(entry.value)
    return limits
