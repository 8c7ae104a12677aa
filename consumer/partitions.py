"""The partitions this worker owns: their offsets, and the tasks working on them.

Every job is stamped with its partition's assignment epoch. When a partition is
revoked, its tasks get one shared deadline to finish; what is left is cancelled
(closing the HTTP request makes vLLM abort the sequence on the GPU), and a result
of a revoked epoch is never produced because its `PartitionKey` is gone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from consumer.offsets import PartitionOffsets


@dataclass(frozen=True, slots=True)
class PartitionKey:
    """A partition and the assignment epoch it was (re)assigned under."""

    topic: str
    partition: int
    epoch: int


@dataclass(slots=True)
class PartitionState:
    """One owned partition."""

    offsets: PartitionOffsets = field(default_factory=PartitionOffsets)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


class PartitionRegistry:
    """Owned partitions by key; all methods run on the event loop."""

    def __init__(self) -> None:
        self._states: dict[PartitionKey, PartitionState] = {}
        self._task_keys: dict[asyncio.Task[None], frozenset[PartitionKey]] = {}

    def __contains__(self, key: object) -> bool:
        return key in self._states

    def __len__(self) -> int:
        return len(self._states)

    def get(self, key: PartitionKey) -> PartitionState | None:
        """The state of ``key``, or None when it is not (or no longer) owned."""
        return self._states.get(key)

    def assign(self, keys: Iterable[PartitionKey]) -> None:
        """Starts tracking newly assigned partitions."""
        for key in keys:
            self._states[key] = PartitionState()

    def attach(self, keys: Iterable[PartitionKey], task: asyncio.Task[None]) -> None:
        """Records that ``task`` works on jobs of ``keys``."""
        keys = frozenset(keys)
        self._task_keys[task] = keys
        task.add_done_callback(self._forget_task)
        for key in keys:
            state = self._states.get(key)
            if state is not None:
                state.tasks.add(task)
                task.add_done_callback(state.tasks.discard)

    def _forget_task(self, task: asyncio.Task[None]) -> None:
        self._task_keys.pop(task, None)

    def complete(self, key: PartitionKey, offset: int) -> None:
        """Marks an offset done, if its partition is still owned under that epoch."""
        state = self._states.get(key)
        if state is not None:
            state.offsets.complete(offset)

    def take_commits(self) -> dict[PartitionKey, int]:
        """Offsets that moved since the last commit."""
        commits = {}
        for key, state in self._states.items():
            offset = state.offsets.take_commit()
            if offset is not None:
                commits[key] = offset
        return commits

    def retry_commits(self, keys: Iterable[PartitionKey]) -> None:
        """Offers the committable offset of ``keys`` again (their last commit failed)."""
        for key in keys:
            state = self._states.get(key)
            if state is not None:
                state.offsets.reset_commit()

    def committable(self, keys: Iterable[PartitionKey] | None = None) -> dict[PartitionKey, int]:
        """The current committable offset of each partition (for a final commit)."""
        chosen = self._states if keys is None else [k for k in keys if k in self._states]
        result = {}
        for key in chosen:
            offset = self._states[key].offsets.committable()
            if offset is not None:
                result[key] = offset
        return result

    def incomplete(self) -> int:
        """Jobs consumed and not yet finished, over all partitions."""
        return sum(s.offsets.incomplete for s in self._states.values())

    async def drain(self, keys: Iterable[PartitionKey] | None, deadline: float) -> int:
        """Waits for the tasks of ``keys`` (all when None) until ``deadline``, then cancels.

        Returns:
            How many tasks had to be cancelled.
        """
        chosen = list(self._states) if keys is None else [k for k in keys if k in self._states]
        while True:
            # Re-read each round: a finished evaluation spawns the delivery of its result.
            pending = {t for k in chosen for t in self._states[k].tasks if not t.done()}
            remaining = deadline - time.monotonic()
            if not pending or remaining <= 0:
                break
            await asyncio.wait(pending, timeout=remaining)
        # A micro-batch task that also serves partitions we keep runs on; its results
        # for the revoked ones are dropped when they arrive (their keys are gone).
        revoked = set(chosen)
        pending = {t for t in pending if self._task_keys.get(t, frozenset()) <= revoked}
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
        return len(pending)

    def release(self, keys: Iterable[PartitionKey]) -> None:
        """Forgets partitions; later outcomes of their jobs are dropped."""
        for key in keys:
            self._states.pop(key, None)
