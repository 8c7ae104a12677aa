"""The request ledger: one record of every request's life, and the bounds it keeps.

A request passes, in order: **handed over** (the consumer thread read it) → **accepted** (its
partition is owned and its offset new: tracked in `partitions`) → **queued** (waiting for a
window slot) → **in flight** (in the engine) → **outcome** (final: its slot is free) →
**acknowledged** (the broker has its result, or the transaction holds it: its offset completes)
→ **committable** (every offset below it is complete). Stages report each transition here and
ask their questions here: how much each lane may read (`room`), how many bulk requests may
enter the engine (`bulk_room`), which offsets may be committed, what must drain.

**The memory bound holds by construction.** Every message the worker holds counts as one
*hold* from the moment the consumer thread hands it over until the request leaves: its result
acknowledged (at-least-once), its transaction committed (exactly-once: aborted transactions keep
their holds, so the partitions pause), its partition revoked, or the message dropped. Holds are
added only by the consumer thread, in `hand_over`, which refuses a message when its lane is full
(the source then rewinds that partition to it); they are removed only by the event loop. So the
bulk lane never holds more than the window's limit plus its read-ahead
(`AdmissionWindow.high_water`, counting every lane's holds), and the interactive lane never more
than its own read-ahead (``lanes.buffer``), however the two threads interleave.

Threads: `room`, `resume_at` and `hand_over` are called by the consumer thread; they and the
loop's releases share one lock. Everything else runs on the event loop only.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Literal

from consumer.admission import AdmissionWindow
from consumer.jobs import Job
from consumer.lanes import BULK, INTERACTIVE, LANES, Lane
from consumer.partitions import PartitionKey, PartitionRegistry
from consumer.settings import LaneSettings

# When a request's hold ends: at its acknowledgement, or when its transaction commits.
ReleaseAt = Literal["acknowledged", "committed"]
Ref = tuple[PartitionKey, int]  # a message: its partition (with epoch) and offset


def release_at(processing_guarantee: str) -> ReleaseAt:
    """When a request's hold ends: exactly-once keeps it until its transaction commits."""
    return "committed" if processing_guarantee == "exactly_once" else "acknowledged"


class RequestLedger:
    """Records each request's transitions and answers for them.

    Args:
        window: the in-flight window (its high water bounds the bulk lane; outcomes free
            its slots).
        lanes: the lane settings (interactive read-ahead, bulk limit, hold).
        topics: the consumed topics and the lane of each.
        release_at: when a hold ends (``committed`` in exactly-once mode).
        clock: monotonic seconds (the interactive lane's hold time).
    """

    def __init__(
        self,
        window: AdmissionWindow,
        lanes: LaneSettings,
        topics: dict[str, Lane],
        *,
        release_at: ReleaseAt = "acknowledged",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window
        self.partitions = PartitionRegistry()
        self._topics = dict(topics)
        self._release_at = release_at
        self._clock = clock
        self._interactive_buffer = lanes.buffer
        self._bulk_limit = lanes.bulk_limit
        self._hold_s = lanes.hold_s
        self._interactive_seen = -float("inf")
        self._lock = threading.Lock()  # guards _held and _holds (both threads)
        self._held: dict[Lane, int] = dict.fromkeys(LANES, 0)
        self._holds: dict[PartitionKey, Counter[int]] = {}
        self._draining = False
        # Event loop only.
        self._queued: Counter[Lane] = Counter(dict.fromkeys(LANES, 0))
        self._in_flight: dict[Ref, Lane] = {}
        self._in_flight_of: Counter[Lane] = Counter(dict.fromkeys(LANES, 0))
        self.acknowledged_total = 0

    # ----- the consumer thread ------------------------------------------------------------

    def room(self, lane: Lane) -> int:
        """How many more messages of ``lane`` may be read now (0 or less pauses the lane)."""
        if self._draining or not self.window.is_open:
            return 0
        with self._lock:
            return self._capacity(lane)

    def _capacity(self, lane: Lane) -> int:
        """Free holds of ``lane`` (the caller holds the lock)."""
        if lane == BULK:
            return self.window.high_water - sum(self._held.values())
        return self._interactive_buffer - self._held[lane]

    def resume_at(self, lane: Lane) -> int:
        """The room at which the lane's paused partitions resume (hysteresis: each pause
        drops librdkafka's prefetched data, so not too often)."""
        if lane == BULK:
            return self.window.resume_at
        return max(1, self._interactive_buffer // 2)

    def hand_over(self, refs: Iterable[Ref]) -> dict[PartitionKey, int]:
        """Takes a hold for each message its lane has room for, in order.

        A message without room is refused, and so is every later one of its partition (the
        order within a partition is kept).

        Returns:
            Per partition with a refused message, the first refused offset: the source must
            rewind the partition to it (nothing from it on was handed over).
        """
        refused: dict[PartitionKey, int] = {}
        with self._lock:
            for key, offset in refs:
                lane = self._topics.get(key.topic, BULK)
                if key in refused or self._capacity(lane) <= 0:
                    refused.setdefault(key, offset)
                    continue
                self._held[lane] += 1
                self._holds.setdefault(key, Counter())[offset] += 1
        return refused

    def force(self, refs: Iterable[Ref]) -> None:
        """Takes holds beyond the bound: only where a rewind was impossible (never drop)."""
        with self._lock:
            for key, offset in refs:
                self._held[self._topics.get(key.topic, BULK)] += 1
                self._holds.setdefault(key, Counter())[offset] += 1

    # ----- releases (event loop) ----------------------------------------------------------

    def _release(self, key: PartitionKey, offset: int) -> None:
        with self._lock:
            holds = self._holds.get(key)
            if holds is None or holds[offset] <= 0:
                return  # released already (its partition was revoked)
            holds[offset] -= 1
            if not holds[offset]:
                del holds[offset]
            self._held[self._topics.get(key.topic, BULK)] -= 1

    def _release_below(self, key: PartitionKey, offset: int) -> None:
        with self._lock:
            holds = self._holds.get(key)
            if holds is None:
                return
            for done in [o for o in holds if o < offset]:
                self._held[self._topics.get(key.topic, BULK)] -= holds.pop(done)

    def _release_partition(self, key: PartitionKey) -> None:
        with self._lock:
            holds = self._holds.pop(key, Counter())
            self._held[self._topics.get(key.topic, BULK)] -= holds.total()

    # ----- transitions (event loop) -------------------------------------------------------

    def assign(self, keys: Iterable[PartitionKey]) -> None:
        """Partitions now owned."""
        self.partitions.assign(keys)

    def release(self, keys: Iterable[PartitionKey]) -> None:
        """Partitions gone (revoked or lost): every hold of theirs ends.

        Their evaluations still running keep their window slots until they report (the
        engine is still busy with them); their outcomes are not published.
        """
        gone = set(keys)
        self.partitions.release(gone)
        for key in gone:
            self._release_partition(key)

    def accept(self, job: Job) -> bool:
        """A handed-over message reached the loop; False when it is not to be processed.

        Not processed (and its hold released): its partition left meanwhile, or librdkafka
        delivered an offset again within one assignment (pause/resume around a rebalance),
        which is in progress or done here already.
        """
        state = self.partitions.get(job.source)
        if state is None or not state.offsets.is_new(job.offset):
            self._release(job.source, job.offset)
            return False
        state.offsets.track(job.offset)
        if job.lane == INTERACTIVE:
            self._interactive_seen = self._clock()
        return True

    def queued(self, job: Job) -> None:
        """An accepted job waits for a window slot."""
        self._queued[job.lane] += 1

    def dropped(self, jobs: Iterable[Job]) -> None:
        """Queued jobs taken out (revoke, shutdown): never sent, their offsets stay open."""
        for job in jobs:
            self._queued[job.lane] -= 1
            self._release(job.source, job.offset)

    def admitted(self, jobs: Iterable[Job]) -> None:
        """Queued jobs took window slots (the batcher admitted them)."""
        for job in jobs:
            self._queued[job.lane] -= 1
            self._in_flight[(job.source, job.offset)] = job.lane
            self._in_flight_of[job.lane] += 1

    def outcome(self, job: Job) -> bool:
        """A job's outcome is final: its slot is free. False when it was final already."""
        return self._free_slot((job.source, job.offset))

    def abandon(self, jobs: Iterable[Job]) -> None:
        """An evaluation ended without outcomes for ``jobs`` (cancelled): free their slots."""
        for job in jobs:
            self._free_slot((job.source, job.offset))

    def _free_slot(self, ref: Ref) -> bool:
        lane = self._in_flight.pop(ref, None)
        if lane is None:
            return False
        self._in_flight_of[lane] -= 1
        self.window.release()
        return True

    def acknowledged(self, job: Job) -> None:
        """The committer took the job's outcome: its offset completes."""
        if job.source not in self.partitions:
            return
        self.partitions.complete(job.source, job.offset)
        self.acknowledged_total += 1
        if self._release_at == "acknowledged":
            self._release(job.source, job.offset)

    def committed(self, offsets: dict[PartitionKey, int]) -> None:
        """Offsets are durable: in exactly-once mode the holds below them end."""
        if self._release_at == "committed":
            for key, offset in offsets.items():
                self._release_below(key, offset)

    def drain_mode(self) -> None:
        """Shutdown: no more room for any lane."""
        self._draining = True

    # ----- questions (event loop) ---------------------------------------------------------

    def owns(self, key: PartitionKey) -> bool:
        """Whether ``key`` (partition and epoch) is still owned."""
        return key in self.partitions

    def held(self, lane: Lane | None = None) -> int:
        """Messages held (handed over and not released), of ``lane`` or in all."""
        with self._lock:
            return sum(self._held.values()) if lane is None else self._held[lane]

    def queued_of(self, lane: Lane) -> int:
        """Jobs of ``lane`` waiting for a slot."""
        return self._queued[lane]

    def in_flight_of(self, lane: Lane) -> int:
        """Jobs of ``lane`` in the engine."""
        return self._in_flight_of[lane]

    def bulk_room(self, free: int) -> int:
        """Of ``free`` window slots, how many bulk requests may take now.

        While the interactive lane is active (a request of it in the worker, or one seen
        within ``hold_s``), at most ``lanes.bulk_limit`` bulk requests are in flight, so the
        engine's batch stays small enough for interactive requests to decode fast.
        """
        if self._bulk_limit is None or not self._interactive_active():
            return free
        return min(free, self._bulk_limit - self._in_flight_of[BULK])

    def _interactive_active(self) -> bool:
        held = self._queued[INTERACTIVE] + self._in_flight_of[INTERACTIVE]
        return held > 0 or self._clock() - self._interactive_seen < self._hold_s

    def committable(self, keys: Iterable[PartitionKey] | None = None) -> dict[PartitionKey, int]:
        """Each partition's committable offset (its lowest incomplete one)."""
        return self.partitions.committable(keys)

    def take_commits(self) -> dict[PartitionKey, int]:
        """Committable offsets that moved since they were last taken."""
        return self.partitions.take_commits()

    def retry_commits(self, keys: Iterable[PartitionKey]) -> None:
        """A commit of ``keys`` failed: offer their offsets again."""
        self.partitions.retry_commits(keys)

    def attach(self, keys: Iterable[PartitionKey], task: asyncio.Task[None]) -> None:
        """``task`` works on requests of ``keys`` (revoke and shutdown wait for it)."""
        self.partitions.attach(keys, task)

    async def drain(self, keys: Iterable[PartitionKey] | None, deadline: float) -> int:
        """Waits for the work of ``keys`` (all when None) until ``deadline``, then cancels.

        Returns:
            How many tasks had to be cancelled.
        """
        return await self.partitions.drain(keys, deadline)
