"""The commit, and its one owner: cadence, numbered steps, one deadline from drain to flush.

`Committer.commit` runs the same steps for every caller (quix-streams' ``Checkpoint.commit``
is the model):

1. **flush**: every outcome whose offset may be committed was acknowledged by the broker
   (at-least-once: an offset completes only on its result's ``acks=all``), or is held for
   the transaction that writes it (exactly-once);
2. **offsets**: the committable offsets, from the `RequestLedger` (each partition's lowest
   incomplete offset, where it moved);
3. **write**: through the `CommitPath` of the guarantee: the consumer commits them on its own
   thread (`OffsetPath`, at-least-once), or one transaction produces the held outcomes and
   commits the offsets with them (`consumer.transactions.TransactionalPath`, exactly-once);
4. **record**: the ledger learns what is durable (exactly-once releases the holds below it).

It runs every ``kafka.commit_interval_s`` (`run`), on revoke (`revoke`: drain the partitions'
work, then commit it, before they go) and on shutdown (`final`), each under one `Deadline`:
the drain, the commit and the flush take what is left of the same budget. A `CommitError`
means this process may not commit again (fenced); it propagates to the supervisor.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from typing import Protocol

from consumer.deadline import Deadline
from consumer.ledger import RequestLedger
from consumer.partitions import PartitionKey
from consumer.records import Outcome
from consumer.result_sink import ResultSink

log = logging.getLogger(__name__)

# Each regular commit gets this long; a slower one is abandoned for the next (at-least-once)
# or fails the worker when its transaction cannot finish (exactly-once).
_TICK_BUDGET_S = 30.0
# Every this many ticks every partition's position is committed again, moved or not (Kafka's own
# auto-commit re-commits every interval): an asynchronous commit that a coordinator failover left
# unanswered, or that a restarted broker lost, is made good within that many intervals. Between
# those ticks a commit is sent only when an offset moved.
_REFRESH_EVERY_TICKS = 10
# Of a revoke's or a shutdown's budget, what the drain leaves for commit, leave and flush.
COMMIT_RESERVE_S = 5.0


class CommitPort(Protocol):
    """Where offsets are committed: `consumer.request_source.RequestSource.commit`, which
    hops to the consumer's thread (the consumer is only ever called from there)."""

    def commit(
        self, offsets: dict[PartitionKey, int], *, in_rebalance: bool = False
    ) -> concurrent.futures.Future[None]:
        """Commits ``offsets``; the future is done once the commit was made."""


class CommitPath(Protocol):
    """How outcomes and offsets become durable under one guarantee (event loop)."""

    async def deliver(self, outcome: Outcome) -> Outcome:
        """Takes a final outcome; returns (the outcome as sent) once its offset may complete."""

    async def write(
        self, offsets: dict[PartitionKey, int], deadline: Deadline, *, in_rebalance: bool
    ) -> bool:
        """Makes ``offsets`` durable; False when they must be offered again."""

    def forget(self, keys: set[PartitionKey]) -> None:
        """Partitions left this worker: drop what is held for them."""

    def close(self, deadline: Deadline) -> None:
        """Releases what the path owns (after the consumer left the group)."""


class OffsetPath:
    """At-least-once: outcomes sent as they come, offsets committed by the consumer.

    Args:
        port: the consumer's commit port.
        sink: the results and dead-letter topics.
    """

    def __init__(self, port: CommitPort, sink: ResultSink) -> None:
        self._port = port
        self._sink = sink

    async def deliver(self, outcome: Outcome) -> Outcome:
        """Sends the outcome and waits for the broker's acknowledgement (``acks=all``)."""
        return await self._sink.publish(outcome)

    async def write(
        self, offsets: dict[PartitionKey, int], deadline: Deadline, *, in_rebalance: bool
    ) -> bool:
        """Hands the offsets to the consumer's thread; waits until they were committed."""
        made = asyncio.wrap_future(self._port.commit(offsets, in_rebalance=in_rebalance))
        try:
            await asyncio.wait_for(made, deadline.remaining(1.0))
        except TimeoutError:
            log.warning("the consumer did not commit %d offsets in time", len(offsets))
            return False
        return True

    def forget(self, keys: set[PartitionKey]) -> None:
        """Nothing is held here."""

    def close(self, deadline: Deadline) -> None:
        """Nothing of its own: the sink is the committer's to close."""


class Committer:
    """Owns the commit of one worker.

    Args:
        ledger: the request ledger (committable offsets, drains, holds).
        path: the guarantee's commit path.
        interval_s: the commit cadence (``kafka.commit_interval_s``).
        sink: the results and dead-letter producer, flushed and closed last.
    """

    def __init__(
        self,
        ledger: RequestLedger,
        path: CommitPath,
        interval_s: float,
        sink: ResultSink | None = None,
    ) -> None:
        self._ledger = ledger
        self._path = path
        self._interval_s = interval_s
        self._sink = sink
        self._lock = asyncio.Lock()  # one commit at a time: a tick never overtakes a revoke

    async def deliver(self, outcome: Outcome) -> Outcome:
        """Takes a final outcome (see `CommitPath.deliver`)."""
        return await self._path.deliver(outcome)

    async def run(self) -> None:
        """Commits every interval until cancelled."""
        ticks = 0
        while True:
            await asyncio.sleep(self._interval_s)
            ticks += 1
            refresh = ticks % _REFRESH_EVERY_TICKS == 0
            await self.commit(Deadline.after(_TICK_BUDGET_S), refresh=refresh)

    async def commit(
        self,
        deadline: Deadline,
        keys: list[PartitionKey] | None = None,
        *,
        in_rebalance: bool = False,
        refresh: bool = False,
    ) -> None:
        """The numbered steps (see the module docstring) for ``keys`` (all when None).

        With ``refresh`` every partition's position is written, moved or not.

        Raises:
            CommitError: fenced; this process may not commit again.
        """
        async with self._lock:
            # 1. flush: nothing to wait for; an offset completes only once its outcome was
            #    acknowledged or is held by the transaction written in step 3.
            # 2. offsets: what moved since the last commit (a revoke commits its partitions'
            #    current position whether it moved or not).
            if keys is None:
                if refresh:
                    self._ledger.retry_commits(self._ledger.committable())
                offsets = self._ledger.take_commits()
            else:
                offsets = self._ledger.committable(keys)
            if not offsets:
                return
            # 3. write, under the deadline.
            durable = await self._path.write(offsets, deadline, in_rebalance=in_rebalance)
            # 4. record: what is durable releases its holds; what is not is offered again.
            if durable:
                self._ledger.committed(offsets)
            else:
                self._ledger.retry_commits(offsets)

    async def revoke(self, keys: list[PartitionKey], *, lost: bool, deadline: Deadline) -> None:
        """Partitions leave: drain their work, commit it, forget what is held for them.

        A lost partition commits nothing: another member owns it already.
        """
        try:
            if not lost:
                cancelled = await self._ledger.drain(keys, deadline.at - COMMIT_RESERVE_S)
                if cancelled:
                    log.info("%d evaluations of revoked partitions cancelled", cancelled)
                await self.commit(deadline, keys, in_rebalance=True)
        finally:
            self._path.forget(set(keys))

    async def final(self, deadline: Deadline) -> None:
        """Shutdown: drain every partition's work, then the last commit."""
        cancelled = await self._ledger.drain(None, deadline.at - COMMIT_RESERVE_S)
        if cancelled:
            log.warning("%d evaluations did not finish in the grace period", cancelled)
        async with self._lock:
            offsets = self._ledger.committable()
            if await self._path.write(offsets, deadline, in_rebalance=False):
                self._ledger.committed(offsets)

    def close(self, deadline: Deadline) -> None:
        """Flushes and releases the path's producer (after the consumer left the group)."""
        self._path.close(deadline)
        if self._sink is not None:
            self._sink.close(deadline.remaining(1.0))
