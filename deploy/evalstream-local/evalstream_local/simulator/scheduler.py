"""The simulated engine's step loop: continuous batching in real (scaled) time on asyncio.

:class:`Scheduler` runs the :class:`~evalstream_local.simulator.batch_planner.BatchPlanner` as an
engine does: plan a step, let it take its duration (divided by ``time_scale``), apply it, wake the
requests it advanced, repeat while there is work, and park when there is none. Deadlines are
absolute, so the sleeps' overshoot does not add up: a late step is followed by a shorter sleep. A
sequence that is aborted (its client went away) leaves the batch at once.

The ``instant`` profile skips the loop: a submitted sequence is finished on the spot.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from evalstream_local.simulator.batch_planner import BatchPlanner, EngineBusyError
from evalstream_local.simulator.profile import SimulatorProfile
from evalstream_local.simulator.sequence import Sequence, SequenceState

__all__ = ["EngineBusyError", "Scheduler", "SchedulerGauges"]

# How far the loop may fall behind its deadlines (CPU starved) before it stops catching up;
# past it, simulated time simply runs slower than the model says.
_MAX_LAG_S = 0.25


@dataclass(frozen=True)
class SchedulerGauges:
    """A snapshot of the engine's load, for ``/metrics`` and ``/_simulator/stats``."""

    running: int
    waiting: int
    kv_cache_usage: float
    prompt_tokens_total: int
    generation_tokens_total: int
    finished_total: dict[str, int]
    preemptions_total: int
    prefix_cache_queries_total: int
    prefix_cache_hits_total: int
    steps_total: int


class Scheduler:
    """Owns the batch of one simulated engine and advances it step by step."""

    def __init__(self, profile: SimulatorProfile) -> None:
        self.profile = profile
        self.planner = BatchPlanner(profile)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._steps = 0

    async def start(self) -> None:
        """Starts the step loop (a no-op for the instant profile)."""
        if self._task is None and not self.profile.instant:
            self._task = asyncio.create_task(self._run(), name="simulator-step-loop")

    async def stop(self) -> None:
        """Stops the loop and aborts whatever is still queued or running."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        now = self._now()
        for seq in [*self.planner.running, *self.planner.waiting]:
            self.planner.abort(seq, now)

    def submit(self, seq: Sequence) -> None:
        """Queues a sequence; raises :class:`EngineBusyError` when the queue is full."""
        if self.profile.instant:
            seq.progress = asyncio.Event()
            self._finish_instantly(seq)
            return
        self.planner.add(seq, self._now())
        seq.progress = asyncio.Event()
        self._wake.set()

    def abort(self, seq: Sequence) -> bool:
        """Drops a sequence from the engine; False when it had already ended."""
        return self.planner.abort(seq, self._now())

    async def wait(self, seq: Sequence) -> None:
        """Returns once the sequence has finished or been aborted."""
        event = self._event(seq)
        while not seq.done:
            event.clear()
            await event.wait()

    async def progress(self, seq: Sequence) -> AsyncIterator[int]:
        """Yields the sequence's token count each time it grows, until it ends."""
        event = self._event(seq)
        seq.streaming = True
        seen = 0
        while True:
            if seq.generated > seen:
                seen = seq.generated
                yield seen
            if seq.done:
                return
            event.clear()
            if seq.generated == seen and not seq.done:
                await event.wait()

    @staticmethod
    def _event(seq: Sequence) -> asyncio.Event:
        if seq.progress is None:
            raise RuntimeError("sequence was never submitted")
        return seq.progress

    def gauges(self) -> SchedulerGauges:
        """Current load and the cumulative counters."""
        planner = self.planner
        return SchedulerGauges(
            running=len(planner.running),
            waiting=len(planner.waiting),
            kv_cache_usage=planner.kv_usage,
            prompt_tokens_total=planner.prompt_tokens_total,
            generation_tokens_total=planner.generation_tokens_total,
            finished_total=dict(planner.finished_total),
            preemptions_total=planner.preemptions_total,
            prefix_cache_queries_total=planner.prefix_cache.queries,
            prefix_cache_hits_total=planner.prefix_cache.hits,
            steps_total=self._steps,
        )

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        while True:
            plan = self.planner.plan(self._now())
            if plan is None:
                self._wake.clear()
                await self._wake.wait()
                deadline = loop.time()
                continue
            deadline = max(deadline, loop.time() - _MAX_LAG_S)
            deadline += plan.duration_s / self.profile.time_scale
            delay = deadline - loop.time()
            # Sleep even when late: request handlers must get their turn between steps.
            await asyncio.sleep(max(0.0, delay))
            self._steps += 1
            for seq in self.planner.complete(plan, self._now()):
                seq.notify()

    def _finish_instantly(self, seq: Sequence) -> None:
        now = self._now()
        planner = self.planner
        seq.arrived_at = seq.admitted_at = seq.first_token_at = seq.finished_at = now
        seq.computed_tokens = seq.prompt_tokens
        seq.generated = seq.output_tokens
        seq.state = SequenceState.FINISHED
        planner.prompt_tokens_total += seq.prompt_tokens
        planner.generation_tokens_total += seq.output_tokens
        planner.finished_total[seq.finish_reason] = (
            planner.finished_total.get(seq.finish_reason, 0) + 1
        )
        seq.notify()

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()
