"""How many more messages each lane may take: the worker's backpressure, per lane.

The bulk lane may hold the window plus its read-ahead (`AdmissionWindow.high_water`),
counting everything the worker holds, interactive requests included, and results not yet
acknowledged (while the results topic is unavailable the worker stops taking work instead
of evaluating the backlog into memory). The interactive lane has a read-ahead of its own
and counts only its own requests, so a full bulk backlog never pauses it; its memory is
bounded by that read-ahead.

Each counter is written by one thread only (the consumer thread counts what it handed
over, the event loop the rest), so no lock is needed.
"""

from __future__ import annotations

import time
from collections import Counter

from consumer.admission import AdmissionWindow
from consumer.batcher import MicroBatcher
from consumer.jobs import Job
from consumer.lanes import BULK, INTERACTIVE, LANES, Lane
from consumer.publisher import OutcomePublisher
from consumer.settings import LaneSettings


class LaneDemand:
    """Counts what each lane holds and answers the consumer thread's ``demand``.

    It also holds the lanes' bulk limit: while the interactive lane is active (a request of
    it in the worker, or one seen within ``hold_s``), at most ``bulk_limit`` bulk requests are
    in flight, so the engine's batch is small enough for interactive requests to decode fast.

    Args:
        window: the in-flight window (its high water bounds the bulk lane).
        batcher: the jobs waiting for a slot.
        publisher: the outcomes not yet acknowledged.
        lanes: the lane settings (read-ahead, bulk limit, hold).
    """

    def __init__(
        self,
        window: AdmissionWindow,
        batcher: MicroBatcher,
        publisher: OutcomePublisher,
        lanes: LaneSettings,
    ) -> None:
        self._window = window
        self._batcher = batcher
        self._publisher = publisher
        self._interactive_buffer = lanes.buffer
        self._bulk_limit = lanes.bulk_limit
        self._hold_s = lanes.hold_s
        self._interactive_seen = -float("inf")
        # Every key present from the start: the other thread sums them while they change.
        self._handed_over: Counter[Lane] = Counter(dict.fromkeys(LANES, 0))  # consumer thread
        self._accepted: Counter[Lane] = Counter(dict.fromkeys(LANES, 0))  # event loop
        self._in_flight: Counter[Lane] = Counter(dict.fromkeys(LANES, 0))  # event loop

    def handed_over(self, lane: Lane, count: int) -> None:
        """The consumer thread passed ``count`` messages of ``lane`` to the loop."""
        self._handed_over[lane] += count

    def accepted(self, lane: Lane, count: int) -> None:
        """The loop took ``count`` handed-over messages of ``lane``."""
        self._accepted[lane] += count
        if lane == INTERACTIVE:
            self._interactive_seen = time.monotonic()

    def bulk_room(self, free: int) -> int:
        """Of ``free`` window slots, how many bulk requests may take now."""
        if self._bulk_limit is None or not self._interactive_active():
            return free
        return min(free, self._bulk_limit - self._in_flight[BULK])

    def _interactive_active(self) -> bool:
        held = self._batcher.queued(INTERACTIVE) + self._in_flight[INTERACTIVE]
        return held > 0 or time.monotonic() - self._interactive_seen < self._hold_s

    def admitted(self, jobs: list[Job]) -> None:
        """Jobs took window slots."""
        for job in jobs:
            self._in_flight[job.lane] += 1

    def released(self, job: Job) -> None:
        """A job gave its window slot back."""
        self._in_flight[job.lane] -= 1

    def of(self, lane: Lane) -> int:
        """How many more messages of ``lane`` the worker can take (0 or less pauses)."""
        if lane == BULK:
            in_transit = self._handed_over.total() - self._accepted.total()
            held = len(self._batcher) + self._window.in_flight + self._publisher.pending
            return self._window.high_water - in_transit - held
        in_transit = self._handed_over[lane] - self._accepted[lane]
        held = self._batcher.queued(lane) + self._in_flight[lane] + self._publisher.pending_of(lane)
        return self._interactive_buffer - in_transit - held

    def resume_at(self, lane: Lane) -> int:
        """The demand at which the lane's paused partitions resume."""
        if lane == BULK:
            return self._window.resume_at
        return max(1, self._interactive_buffer // 2)
