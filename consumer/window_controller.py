"""Samples what the engine does at the current window and applies the policy.

After a change the controller first lets one turnover of the window complete (the
requests admitted under the old limit finish and the batch refills under the new
one: measured earlier, a step down reads high while the engine drains and a step up
reads low while it prefills, which walked the window down on a real H200). A sample
then lasts at least ``interval_s`` and ``_MIN_TURNOVERS`` turnovers, and goes on until
its rate is known to within ``_PRECISION`` (relative standard error, by batch means
over one-turnover batches) or it reaches ``_MAX_TURNOVERS`` turnovers or
``_MAX_SAMPLE_INTERVALS`` intervals. An overload signal ends it at once.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
import statistics
from collections.abc import Sequence

from consumer.admission import AdmissionWindow
from consumer.backends.base import Backend
from consumer.clock import MONOTONIC, Clock
from consumer.metrics import Metrics
from consumer.occupancy import OccupancySampler
from consumer.window_policy import WindowPolicy, WindowSample

log = logging.getLogger(__name__)

_TICK_S = 0.1
_CHECK_TICKS = 10  # the precision is checked once a second
# Engines complete requests in bursts (sequences admitted together finish together): at one
# turnover a rate is ±15% on an H200. The error is estimated from one-turnover batches, which
# takes a few of them.
_MIN_TURNOVERS = 4
_MAX_TURNOVERS = 12
_PRECISION = 0.015  # half the adaptive policy's 3% gain
# No sample lasts longer than this many intervals (~5 minutes at 2 s): an engine with
# structured output and a slow model may take half a minute per request.
_MAX_SAMPLE_INTERVALS = 150


def relative_error(times: Sequence[float], start: float, end: float, batches: int) -> float:
    """Relative standard error of the completion rate, by the method of batch means.

    Args:
        times: completion times in order, all within ``[start, end]``.
        start, end: the span measured.
        batches: equal parts the span is cut into (about one turnover each, so a cohort of
            requests finishing together falls within one part rather than between two).

    Returns:
        The standard error of the mean of the parts' rates over that mean; ``inf`` with
        fewer than two parts or no completion.
    """
    span = end - start
    if batches < 2 or span <= 0 or not times:
        return math.inf
    width = span / batches
    bounds = [bisect.bisect_right(times, start + i * width) for i in range(batches)]
    bounds.append(len(times))
    rates = [(b - a) / width for a, b in itertools.pairwise(bounds)]
    return statistics.stdev(rates) / math.sqrt(batches) / (len(times) / span)


class WindowController:
    """Moves the window limit according to a `WindowPolicy`."""

    def __init__(
        self,
        window: AdmissionWindow,
        policy: WindowPolicy,
        backend: Backend,
        metrics: Metrics,
        interval_s: float,
        clock: Clock = MONOTONIC,
    ) -> None:
        self._window = window
        self._clock = clock
        self._policy = policy
        self._backend = backend
        self._metrics = metrics
        self._interval_s = interval_s
        self._completed = 0
        self._overloads = 0
        self._times: list[float] | None = None  # completion times while a sample runs
        self._occupancy = OccupancySampler(window, backend, metrics, interval_s, self, clock)

    def completed(self) -> None:
        """Called once per finished engine request."""
        self._completed += 1
        if self._times is not None:
            self._times.append(self._clock.now())

    def overloaded(self) -> None:
        """Called when the engine signals overload (429 / 503 busy)."""
        self._overloads += 1

    @property
    def counts(self) -> tuple[int, int]:
        """Requests completed and overload signals so far."""
        return self._completed, self._overloads

    async def run(self) -> None:
        """Samples and adjusts forever; cancel the task to stop."""
        self._metrics.window_limit.set(self._window.limit)
        while True:
            if await self._backend.load() is not None:
                sample = await self._occupancy.sample(self._window.limit)
            else:
                await self._warm_up()
                sample = await self._sample()
            if sample is None:
                continue
            limit = self._policy.next_limit(sample)
            if limit != self._window.limit:
                log.info("window %d -> %d (%s)", sample.limit, limit, describe_move(sample))
                self._window.set_limit(limit)
                self._metrics.window_limit.set(limit)

    async def _warm_up(self) -> None:
        """Lets one turnover complete: what was in flight at the change, or a full window."""
        target = self._completed + max(self._window.limit, self._window.in_flight)
        deadline = self._clock.now() + self._interval_s * _MAX_SAMPLE_INTERVALS
        while self._completed < target and self._clock.now() < deadline:
            await self._clock.sleep(_TICK_S)  # a tick, not a stand-in for an event: a timed sample

    async def _sample(self) -> WindowSample | None:
        self._times = []
        try:
            return await self._measure(self._window.limit, self._times)
        finally:
            self._times = None

    async def _measure(self, limit: int, times: list[float]) -> WindowSample | None:
        started, overloads0 = self._clock.now(), self._overloads
        in_flight_sum, ticks, error = 0.0, 0, math.inf
        deadline = started + self._interval_s * _MAX_SAMPLE_INTERVALS
        while True:
            await self._clock.sleep(_TICK_S)
            in_flight_sum += self._window.in_flight
            ticks += 1
            now = self._clock.now()
            if self._window.limit != limit:
                return None  # someone else moved it (the circuit); start over
            if self._overloads > overloads0 or now >= deadline:
                break  # backing off cannot wait minutes
            turnovers = len(times) // max(1, limit)
            if now - started < self._interval_s or turnovers < _MIN_TURNOVERS:
                continue
            if ticks % _CHECK_TICKS == 0 or turnovers >= _MAX_TURNOVERS:
                error = relative_error(times, started, now, turnovers)
                if error <= _PRECISION or turnovers >= _MAX_TURNOVERS:
                    break
        throughput = len(times) / (now - started)  # before awaiting the engine's queue
        overloaded = self._overloads > overloads0 or await self._engine_queue_full(limit)
        return WindowSample(
            limit=limit,
            throughput=throughput,
            mean_in_flight=in_flight_sum / max(1, ticks),
            overloaded=overloaded,
            relative_error=error,
            seconds=now - started,
        )

    async def _engine_queue_full(self, limit: int) -> bool:
        """vLLM queues what its batch cannot hold: a standing queue means too many."""
        load = await self._backend.load()
        if load is None:
            return False
        self._metrics.engine_waiting.set(load.waiting)
        return load.waiting > max(2.0, 0.2 * limit)


def describe_move(sample: WindowSample) -> str:
    """Why the window moved, for the log (benchmarks/window_sweep.py parses it)."""
    error = "" if sample.engine else f" ± {100 * sample.relative_error:.1f}%"
    line = (
        f"{sample.throughput:.1f} req/s{error}, {sample.mean_in_flight:.0f} in flight, "
        f"{sample.seconds:.0f} s{', overloaded' if sample.overloaded else ''}"
    )
    engine = sample.engine
    if engine is not None:
        line += f"; engine runs {engine.running:.0f}, {engine.waiting:.0f} waiting"
        if engine.kv_cache_usage is not None:
            line += f", KV cache {engine.kv_cache_usage:.0%}"
    return line
