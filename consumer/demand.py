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

from collections import Counter

from consumer.admission import AdmissionWindow
from consumer.batcher import MicroBatcher
from consumer.jobs import Job
from consumer.lanes import BULK, LANES, Lane
from consumer.publisher import OutcomePublisher


class LaneDemand:
    """Counts what each lane holds and answers the consumer thread's ``demand``.

    Args:
        window: the in-flight window (its high water bounds the bulk lane).
        batcher: the jobs waiting for a slot.
        publisher: the outcomes not yet acknowledged.
        interactive_buffer: the interactive lane's read-ahead.
    """

    def __init__(
        self,
        window: AdmissionWindow,
        batcher: MicroBatcher,
        publisher: OutcomePublisher,
        interactive_buffer: int,
    ) -> None:
        self._window = window
        self._batcher = batcher
        self._publisher = publisher
        self._interactive_buffer = interactive_buffer
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
