"""The seams of the consumer thread: who it reports to, and who says how much it may read.

`consumer.request_source.RequestSource` calls both from its own thread: the `SourceListener`
(the worker) receives messages and rebalance events; the `Credits` (the request ledger) grant
room per lane and take a hold for each message handed over.
"""

from __future__ import annotations

import concurrent.futures
from typing import Protocol

from confluent_kafka import Message

from consumer.errors import SourceError
from consumer.lanes import Lane
from consumer.partitions import PartitionKey


class Credits(Protocol):
    """How much the worker may hold (`consumer.ledger.RequestLedger`); called from the thread."""

    def room(self, lane: Lane) -> int:
        """How many more messages of ``lane`` may be read (0 or less pauses the lane)."""

    def resume_at(self, lane: Lane) -> int:
        """The room at which the lane's paused partitions resume."""

    def hand_over(self, refs: list[tuple[PartitionKey, int]]) -> dict[PartitionKey, int]:
        """Takes holds for the messages; returns the first refused offset per partition."""

    def force(self, refs: list[tuple[PartitionKey, int]]) -> None:
        """Takes holds beyond the bound (a rewind failed: a message is never dropped)."""


class SourceListener(Protocol):
    """The worker side; every method is called from the source thread."""

    def on_messages(self, messages: list[Message], keys: list[PartitionKey]) -> None:
        """New messages (key per message), holds taken. Must only hand them over."""

    def on_assigned(self, partitions: list[PartitionKey]) -> None:
        """Partitions now owned; returns once the worker tracks them."""

    def on_revoked(
        self, partitions: list[PartitionKey], *, lost: bool
    ) -> concurrent.futures.Future[None]:
        """Partitions going away; the future is done once they are drained and committed
        (the commit comes back to this thread through `RequestSource.commit`)."""

    def on_commit_failed(self, partitions: list[PartitionKey]) -> None:
        """A commit of these partitions failed; their offsets must be offered again."""

    def on_fatal(self, error: SourceError) -> None:
        """The consumer failed for good (its thread has ended); the worker must stop."""
