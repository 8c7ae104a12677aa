"""The consumer thread's events, carried onto the event loop (the worker's `SourceListener`).

Messages go to the intake. Partitions assigned start in the ledger. Partitions revoked drop
their queued jobs, then the committer drains their work and commits it under one `Deadline`
(the rebalance deadline, or what is left of the shutdown's when the worker is leaving), and
the ledger forgets them; a lost partition commits nothing. A failed commit is offered again;
a consumer that failed for good is a death the supervisor stops the worker for.
"""

from __future__ import annotations

import asyncio
import concurrent.futures

from confluent_kafka import Message

from consumer.batcher import MicroBatcher
from consumer.committer import Committer
from consumer.deadline import Deadline
from consumer.errors import CommitError, SourceError
from consumer.intake import RequestIntake
from consumer.ledger import RequestLedger
from consumer.partitions import PartitionKey
from consumer.status import StatusReporter
from consumer.supervisor import Supervisor


class Rebalancer:
    """Implements `consumer.source_listener.SourceListener`; called from the consumer thread.

    Args:
        loop: the event loop the worker runs on.
        intake: takes handed-over messages.
        ledger: the request ledger.
        batcher: holds queued jobs (those of revoked partitions are dropped).
        committer: drains and commits revoked partitions.
        supervisor: told when the consumer failed for good, or a commit is fenced.
        status: counts rebalances.
        deadline_s: the time a revoke gets (``rebalance_deadline_s``).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        intake: RequestIntake,
        ledger: RequestLedger,
        batcher: MicroBatcher,
        committer: Committer,
        supervisor: Supervisor,
        status: StatusReporter,
        deadline_s: float,
    ) -> None:
        self._loop = loop
        self._intake = intake
        self._ledger = ledger
        self._batcher = batcher
        self._committer = committer
        self._supervisor = supervisor
        self._status = status
        self._deadline_s = deadline_s
        self.shutdown: Deadline | None = None  # the shutdown's budget, once it began

    def on_messages(self, messages: list[Message], keys: list[PartitionKey]) -> None:
        self._intake.on_messages(messages, keys)

    def on_assigned(self, partitions: list[PartitionKey]) -> None:
        asyncio.run_coroutine_threadsafe(self._assign(partitions), self._loop).result()

    def on_revoked(
        self, partitions: list[PartitionKey], *, lost: bool
    ) -> concurrent.futures.Future[None]:
        return asyncio.run_coroutine_threadsafe(self._revoke(partitions, lost), self._loop)

    def on_commit_failed(self, partitions: list[PartitionKey]) -> None:
        self._loop.call_soon_threadsafe(self._ledger.retry_commits, partitions)

    def on_fatal(self, error: SourceError) -> None:
        self._supervisor.thread_died("the request source", error.message)

    async def _assign(self, keys: list[PartitionKey]) -> None:
        self._ledger.assign(keys)
        self._status.rebalanced("assigned", len(keys))

    async def _revoke(self, keys: list[PartitionKey], lost: bool) -> None:
        self._ledger.dropped(self._batcher.drop(keys))
        deadline = Deadline.after(self._deadline_s).earliest(self.shutdown)
        try:
            await self._committer.revoke(keys, lost=lost, deadline=deadline)
        except CommitError as exc:
            self._supervisor.fail("the committer", exc.message)
        finally:
            self._ledger.release(keys)
        self._status.rebalanced("lost" if lost else "revoked", len(keys))
