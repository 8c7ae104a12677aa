"""Out-of-order completion tracking: which offset of a partition may be committed.

Results complete in any order, but Kafka stores one offset per partition: the next
one to read. So the committable offset is the lowest offset not yet completed (or one
past the highest seen when everything is complete). A crash then re-delivers at
most the incomplete window, never skips an unfinished request.
"""

from __future__ import annotations

from collections import deque


class PartitionOffsets:
    """The incomplete offsets of one partition under one assignment.

    Offsets are tracked in the order they are consumed, which Kafka guarantees to be
    increasing within a partition; completion may happen in any order. Both
    operations are amortised O(1): completed offsets at the front are popped lazily.
    """

    __slots__ = ("_committed", "_done", "_next", "_pending")

    def __init__(self) -> None:
        self._pending: deque[int] = deque()  # tracked, in consumption order
        self._done: set[int] = set()  # completed but still behind an incomplete one
        self._next: int | None = None  # one past the highest tracked offset
        self._committed: int | None = None  # last offset handed out by `take_commit`

    def track(self, offset: int) -> None:
        """Records that ``offset`` was consumed and is now in progress.

        Raises:
            ValueError: ``offset`` does not increase (a redelivery within one
                assignment means the caller lost track; refuse rather than commit
                a wrong position).
        """
        if self._next is not None and offset < self._next:
            raise ValueError(f"offset {offset} tracked after {self._next - 1}")
        self._pending.append(offset)
        self._next = offset + 1

    def is_new(self, offset: int) -> bool:
        """Whether ``offset`` lies past everything tracked (a redelivery does not)."""
        return self._next is None or offset >= self._next

    def complete(self, offset: int) -> None:
        """Records that the result of ``offset`` was acknowledged by the broker."""
        if self._pending and self._pending[0] == offset:
            self._pending.popleft()
            while self._pending and self._pending[0] in self._done:
                self._done.remove(self._pending.popleft())
        else:
            self._done.add(offset)

    @property
    def incomplete(self) -> int:
        """How many tracked offsets are not complete yet."""
        return len(self._pending) - len(self._done)

    def committable(self) -> int | None:
        """The offset to commit now (the next one to read after a restart), or None."""
        if self._pending:
            return self._pending[0]
        return self._next

    def take_commit(self) -> int | None:
        """The committable offset if it moved forward since the last call, else None."""
        offset = self.committable()
        if offset is None or (self._committed is not None and offset <= self._committed):
            return None
        self._committed = offset
        return offset

    def reset_commit(self) -> None:
        """Forgets the last commit (it failed), so `take_commit` offers it again."""
        self._committed = None
