"""Exactly-once mode: results and source offsets committed in one Kafka transaction.

With ``kafka.processing_guarantee = exactly_once`` a result is not produced when it is
ready; it is held. Every commit interval one transaction (1) produces the held results
whose offsets lie below each partition's lowest incomplete offset, (2) adds those
offsets for the consumer group (KIP-447: the group's metadata fences zombie workers),
(3) commits. A result completed out of order waits for the offsets below it, so a
``read_committed`` consumer never sees a result whose source offset a crash would
deliver again: no duplicates, at the cost of one transaction per interval.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaException, Producer, TopicPartition

from consumer.errors import CommitError
from consumer.partitions import PartitionKey, PartitionRegistry
from consumer.records import Outcome

log = logging.getLogger(__name__)

_TIMEOUT_S = 30.0


class TransactionalCommitter:
    """Holds outcomes and commits them with their offsets, one transaction at a time.

    A `consumer.committer.Committer`: the consumer itself never commits in this mode.

    Args:
        config: librdkafka producer configuration (bootstrap, security).
        transactional_id: stable per worker (``<group>-<worker id>``), so a restarted
            worker fences its previous incarnation.
        group_metadata: returns the consumer's group metadata (generation, member).
        topic_of: maps an outcome to its destination topic.
    """

    def __init__(
        self,
        config: dict[str, Any],
        transactional_id: str,
        group_metadata: Callable[[], object],
        topic_of: Callable[[Outcome], str],
    ) -> None:
        self._producer = Producer(
            {
                **config,
                "transactional.id": transactional_id,
                "enable.idempotence": True,
            }
        )
        self._producer.init_transactions(_TIMEOUT_S)
        self._group_metadata = group_metadata
        self._topic_of = topic_of
        self._held: list[Outcome] = []
        self._committed: dict[PartitionKey, int] = {}
        self._lock = asyncio.Lock()
        self._fenced = False  # a fatal error: this producer may not commit again

    async def deliver(self, outcome: Outcome) -> Outcome:
        """Holds the outcome: it is produced in the transaction that commits its offset."""
        self._held.append(outcome)
        return outcome

    async def tick(self, partitions: PartitionRegistry) -> None:
        """One transaction: the held outcomes below each committable offset, and the offsets."""
        await self._commit_fenced(partitions.committable())

    async def revoke(
        self, partitions: PartitionRegistry, keys: list[PartitionKey], *, lost: bool
    ) -> dict[PartitionKey, int]:
        """Commits a drained partition's work here; returns nothing for the consumer."""
        try:
            if not lost:
                await self._commit_fenced(partitions.committable(keys))
        finally:
            self.drop(set(keys))
        return {}

    async def final(self, partitions: PartitionRegistry) -> dict[PartitionKey, int]:
        """The last transaction; returns nothing for the consumer."""
        await self._commit_fenced(partitions.committable())
        return {}

    async def _commit_fenced(self, offsets: dict[PartitionKey, int]) -> None:
        if self._fenced:
            return
        try:
            await self.commit(offsets)
        except KafkaException as exc:
            self._fenced = True
            raise CommitError(f"transactional commit failed: {exc}") from exc

    def drop(self, keys: set[PartitionKey]) -> None:
        """Forgets held outcomes and commit marks of partitions that left this worker."""
        self._held = [o for o in self._held if o.job.source not in keys]
        for key in keys:
            self._committed.pop(key, None)

    async def commit(self, offsets: dict[PartitionKey, int]) -> None:
        """Commits the held outcomes below ``offsets`` together with those offsets.

        Raises:
            KafkaException: a fatal or fencing error (the worker must stop; a restart
                resumes from the last committed transaction).
        """
        async with self._lock:
            offsets = {k: o for k, o in offsets.items() if self._committed.get(k) != o}
            ready = [o for o in self._held if o.job.offset < offsets.get(o.job.source, -1)]
            if not ready and not offsets:
                return
            ready_ids = {id(o) for o in ready}
            self._held = [o for o in self._held if id(o) not in ready_ids]
            try:
                # Shielded: a transaction, once begun, is finished even if we are cancelled.
                running = asyncio.ensure_future(
                    asyncio.to_thread(self._transaction, ready, offsets)
                )
                try:
                    await asyncio.shield(running)
                except asyncio.CancelledError:
                    await running
                    raise
                self._committed.update(offsets)
            except KafkaException as exc:
                if not exc.args[0].txn_requires_abort():
                    raise
                log.warning("transaction aborted, retrying next interval: %s", exc)
                await asyncio.to_thread(self._producer.abort_transaction, _TIMEOUT_S)
                self._held.extend(ready)

    def _transaction(self, ready: list[Outcome], offsets: dict[PartitionKey, int]) -> None:
        """The steps of one transaction, in order (runs in a worker thread)."""
        self._producer.begin_transaction()  # 1. open
        for outcome in ready:  # 2. the results whose offsets are all done
            job = outcome.job
            self._producer.produce(
                self._topic_of(outcome), value=outcome.value, key=job.key,
                headers=list(outcome.headers or []),
            )  # fmt: skip
            self._producer.poll(0)
        positions = [TopicPartition(k.topic, k.partition, o) for k, o in offsets.items()]
        if positions:  # 3. the source offsets, fenced by the group's generation
            self._producer.send_offsets_to_transaction(
                positions, self._group_metadata(), _TIMEOUT_S
            )
        self._producer.commit_transaction(_TIMEOUT_S)  # 4. results and offsets at once

    def close(self) -> None:
        """Aborts nothing (an open transaction is never left between commits); flushes."""
        if not self._fenced:
            self._producer.flush(_TIMEOUT_S)
