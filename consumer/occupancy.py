"""Samples an engine's own occupancy (vLLM's running and waiting requests) at one window.

With an engine that reports how many requests it runs and holds queued, the window does not
have to be found by timing throughput: it grows while the engine runs everything it is given,
and stops where the engine starts to queue (`AdaptiveWindowPolicy._fill_engine`). A sample
first lets half an interval pass after a change, then polls the engine's counters for another
half; while the queue is still draining (requests admitted by a step up waiting for their
prefill) it goes on, so that a prefill backlog is not read as a full engine.
"""

from __future__ import annotations

from typing import Protocol

from consumer.admission import AdmissionWindow
from consumer.backends.base import Backend, EngineLoad
from consumer.clock import MONOTONIC, Clock
from consumer.metrics import Metrics
from consumer.window_policy import EngineOccupancy, WindowSample

# A sample: half an interval for a change to settle, then polls every eighth of an interval,
# at least four of them (half an interval): one decision a second at the default interval.
_POLLS_PER_INTERVAL = 8
_MIN_POLLS = 4
_MAX_POLLS = 80  # ten intervals: a queue still draining after this long is a full engine
_DRAINING = 0.9  # the queue fell below this share of where it stood: still draining


class Counts(Protocol):
    """Completed requests and overload signals, counted by the window controller."""

    @property
    def counts(self) -> tuple[int, int]: ...


class OccupancySampler:
    """One `WindowSample` with the engine's occupancy per call of `sample`."""

    def __init__(
        self,
        window: AdmissionWindow,
        backend: Backend,
        metrics: Metrics,
        interval_s: float,
        counts: Counts,
        clock: Clock = MONOTONIC,
    ) -> None:
        self._window = window
        self._backend = backend
        self._metrics = metrics
        self._interval_s = interval_s
        self._counts = counts
        self._clock = clock

    async def sample(self, limit: int) -> WindowSample | None:
        """The next sample at ``limit``; None when the limit moved or the engine went quiet."""
        await self._clock.sleep(self._interval_s / 2)  # the change settles, unmeasured
        started = self._clock.now()
        completed0, overloads0 = self._counts.counts
        loads: list[EngineLoad] = []
        in_flight: list[int] = []
        tick = self._interval_s / _POLLS_PER_INTERVAL
        while True:
            await self._clock.sleep(tick)  # a poll period, not a stand-in for an event
            load = await self._backend.load()
            if load is None or self._window.limit != limit:
                return None
            loads.append(load)
            in_flight.append(self._window.in_flight)
            self._metrics.engine_waiting.set(load.waiting)
            completed, overloads = self._counts.counts
            if overloads > overloads0:
                break
            if len(loads) >= _MIN_POLLS and not _draining(loads):
                break
            if len(loads) >= _MAX_POLLS:
                break
        seconds = self._clock.now() - started
        kv = [x.kv_cache_usage for x in loads if x.kv_cache_usage is not None]
        recent = loads[-_MIN_POLLS:]
        return WindowSample(
            limit=limit,
            throughput=(completed - completed0) / seconds,
            mean_in_flight=sum(in_flight) / len(in_flight),
            overloaded=overloads > overloads0,
            seconds=seconds,
            engine=EngineOccupancy(
                running=max(x.running for x in loads),
                waiting=min(x.waiting for x in recent),
                kv_cache_usage=max(kv) if kv else None,
            ),
        )


def _draining(loads: list[EngineLoad]) -> bool:
    """Whether the engine's queue fell steeply over the last polls."""
    recent = loads[-_MIN_POLLS:]
    return recent[0].waiting > 4 and recent[-1].waiting < _DRAINING * recent[0].waiting
