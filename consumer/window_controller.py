"""Samples what the engine does at the current window and applies the policy.

A sample lasts at least ``interval_s`` and until about one window's worth of
requests completed, so each one spans a full turnover of the engine's batch; the
first stretch after a change is not measured (the engine is still filling up).
"""

from __future__ import annotations

import asyncio
import logging
import time

from consumer.admission import AdmissionWindow
from consumer.backends.base import Backend
from consumer.metrics import Metrics
from consumer.window_policy import WindowPolicy, WindowSample

log = logging.getLogger(__name__)

_TICK_S = 0.1
# A sample waits for _TURNOVERS turnovers of the window, but no longer than this many
# intervals (~5 minutes at 2 s): an engine with structured output and a slow model may take
# half a minute per request, and a sample shorter than a request measures nothing.
_MAX_SAMPLE_INTERVALS = 150
_TURNOVERS = 3


class WindowController:
    """Moves the window limit according to a `WindowPolicy`."""

    def __init__(
        self,
        window: AdmissionWindow,
        policy: WindowPolicy,
        backend: Backend,
        metrics: Metrics,
        interval_s: float,
    ) -> None:
        self._window = window
        self._policy = policy
        self._backend = backend
        self._metrics = metrics
        self._interval_s = interval_s
        self._completed = 0
        self._overloads = 0
        self.history: list[tuple[float, int, float]] = []  # (time, limit, throughput)

    def completed(self) -> None:
        """Called once per finished engine request."""
        self._completed += 1

    def overloaded(self) -> None:
        """Called when the engine signals overload (429 / 503 busy)."""
        self._overloads += 1

    async def run(self) -> None:
        """Samples and adjusts forever; cancel the task to stop."""
        self._metrics.window_limit.set(self._window.limit)
        while True:
            await self._warm_up()
            sample = await self._sample()
            if sample is None:
                continue
            limit = self._policy.next_limit(sample)
            self.history.append((time.monotonic(), sample.limit, sample.throughput))
            if limit != self._window.limit:
                log.info(
                    "window %d -> %d (%.1f req/s, %.0f in flight%s)",
                    sample.limit,
                    limit,
                    sample.throughput,
                    sample.mean_in_flight,
                    ", overloaded" if sample.overloaded else "",
                )
                self._window.set_limit(limit)
                self._metrics.window_limit.set(limit)

    async def _warm_up(self) -> None:
        """Lets half a window of requests complete at the current limit first."""
        target = self._completed + self._window.limit // 2
        deadline = time.monotonic() + self._interval_s * _MAX_SAMPLE_INTERVALS
        while self._completed < target and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(_TICK_S)  # a tick, not a stand-in for an event: a timed sample

    async def _sample(self) -> WindowSample | None:
        limit = self._window.limit
        started, completed0, overloads0 = time.monotonic(), self._completed, self._overloads
        in_flight_sum, ticks = 0.0, 0
        deadline = started + self._interval_s * _MAX_SAMPLE_INTERVALS
        while True:
            await asyncio.sleep(_TICK_S)
            in_flight_sum += self._window.in_flight
            ticks += 1
            now = time.monotonic()
            if self._window.limit != limit:
                return None  # someone else moved it (the circuit); start over
            done = self._completed - completed0
            # Engines complete requests in bursts; a sample must span several turnovers of
            # the window or its noise (±15% at one turnover on an H200) hides the trend.
            turnovers = done / max(1, limit)
            # An overload signal ends the sample at once: backing off cannot wait minutes.
            enough = turnovers >= _TURNOVERS or self._overloads > overloads0 or now >= deadline
            if now - started >= self._interval_s and enough:
                break
        overloaded = self._overloads > overloads0 or await self._engine_queue_full(limit)
        return WindowSample(
            limit=limit,
            throughput=(self._completed - completed0) / (now - started),
            mean_in_flight=in_flight_sum / max(1, ticks),
            overloaded=overloaded,
        )

    async def _engine_queue_full(self, limit: int) -> bool:
        """vLLM queues what its batch cannot hold: a standing queue means too many."""
        load = await self._backend.load()
        if load is None:
            return False
        self._metrics.engine_waiting.set(load.waiting)
        return load.waiting > max(2.0, 0.2 * limit)
