"""Policies that size the in-flight window from what the engine does.

The adaptive policy climbs the throughput curve: continuous-batching engines gain
throughput with concurrency up to a limit, after which more requests only queue and
add latency. Where the curve flattens depends on the engine and the client: on one
H200 vLLM answering whole replies gained up to its 512 slots (relative to 128: 1.10 at
256, 1.18 at 512), the same engine streaming every token peaked at 128, and Ollama is
flat from its parallel slots on. The policy grows the window while a step still pays,
steps back when it does not, backs off multiplicatively on overload signals, and probes
now and then in both directions because the best point moves with the workload. A probe
down that keeps its share of the throughput goes on down: on a flat curve the window
descends to the knee instead of holding latency it does not need.

Policies read no clock: a sample carries its own duration (`WindowSample.seconds`), timed by
the controller on its injected `consumer.clock.Clock`, so a policy is a function of the
samples it is given and its tests feed it samples."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol

from consumer.settings import WindowSettings

Action = Literal["hold", "grow", "shrink"]

# Following the engine: a standing queue of this many requests, or this share of those it
# runs, is kept so freed slots refill at once; more means the engine is full.
_MIN_QUEUE = 2.0
_QUEUE_SHARE = 0.05
# Above this KV-cache usage, more requests would make vLLM preempt (and recompute) others.
_KV_GROWTH_LIMIT = 0.9
_SETTLED = 1.05  # more in flight than this times the limit: the window is still shrinking
_KV_ROOMY = 0.25  # below this the window climbs x4 per step: far from anything the engine holds
# The engine counts (running + waiting) fewer than this share of what is in flight: the rest is
# still on its way (HTTP, tokenizing: seconds for a CPU server given 100 long prompts at once),
# and "it runs everything it gets" says nothing yet about what it would do with more.
_SEEN = 0.5


@dataclass(frozen=True, slots=True)
class EngineOccupancy:
    """The engine's own counts during a sample, where it exposes them (vLLM's /metrics).

    Attributes:
        running: the most requests it ran at once.
        waiting: the fewest it held queued: a queue that never emptied had no slot or
            memory to go to.
        kv_cache_usage: the highest share of its KV cache in use (0 to 1), where known.
    """

    running: float
    waiting: float
    kv_cache_usage: float | None = None


@dataclass(frozen=True, slots=True)
class WindowSample:
    """What happened during one measurement interval at one window limit.

    Attributes:
        limit: the window limit during the interval.
        throughput: completed requests per second.
        mean_in_flight: average requests in the engine (demand saturates the window
            when it is close to ``limit``).
        overloaded: the engine signalled overload (429, Ollama 503, a vLLM queue).
        relative_error: the throughput's relative standard error, where it was estimated.
        seconds: how long the sample lasted.
        engine: the engine's occupancy, where it reports one (then the window follows it).
    """

    limit: int
    throughput: float
    mean_in_flight: float
    overloaded: bool
    relative_error: float = math.inf
    seconds: float = 0.0
    engine: EngineOccupancy | None = None


class WindowPolicy(Protocol):
    """Chooses the next window limit from the last sample."""

    def next_limit(self, sample: WindowSample) -> int:
        """The limit for the next interval."""
        ...


class FixedWindowPolicy:
    """A constant window (the prototype's 8 parallel workers is ``FixedWindowPolicy(8)``)."""

    def __init__(self, size: int) -> None:
        self._size = size

    def next_limit(self, sample: WindowSample) -> int:
        return self._size


class AdaptiveWindowPolicy:
    """Hill climbing on throughput, with multiplicative back-off on overload.

    One rule compares two windows, whichever way a step went: the larger one is worth it
    when its throughput is at least ``(large / small) ** log2(1 + gain)`` times the
    smaller one's, i.e. ``gain`` more per doubling (3%: +0.96% for a step of x1.25). A
    step up that meets it is kept, a step down that keeps more than its share is kept.
    Being the same rule both ways, it cannot ratchet: with a looser rule for steps down
    than for steps up, a curve that still rose gently (vLLM answering whole replies: +4%
    per doubling up to 512) was walked down step by step, each step down allowed and each
    step back up refused. The window settles where the curve's elasticity falls below
    ``log2(1 + gain)``.

    Args:
        start: initial limit.
        minimum: lowest limit.
        maximum: highest limit.
        growth: factor of a step up while climbing from ``start`` (later probes step x1.25).
        gain: relative throughput gain a doubling of the window must bring.
        probe_every: intervals at a stable limit between two probes.
    """

    def __init__(
        self,
        start: int,
        minimum: int,
        maximum: int,
        *,
        growth: float = 2.0,
        gain: float = 0.03,
        probe_every: int = 8,
    ) -> None:
        self._min, self._max = minimum, maximum
        self._limit = self._clamp(start)
        self._step, self._probe_every = growth, probe_every  # the climb's step, then x1.25
        self._elasticity = math.log2(1 + gain)
        self._action: Action = "grow"  # start by climbing
        self._base_limit = self._limit  # the last limit kept
        self._base_throughput = 0.0  # its level
        self._ref_limit, self._ref_throughput = self._limit, 0.0  # where a descent began
        self._stable = 0
        self._probe_down_next = False
        self._full_at: int | None = None  # the limit where the engine last queued

    def _clamp(self, limit: float) -> int:
        return max(self._min, min(self._max, round(limit)))

    def _larger_pays(self, large: tuple[int, float], small: tuple[int, float]) -> bool:
        """Whether the larger (limit, throughput) brings its share over the smaller."""
        share: float = (large[0] / small[0]) ** self._elasticity
        return large[1] >= small[1] * share

    def next_limit(self, sample: WindowSample) -> int:
        if sample.overloaded:
            return self._back_off(sample)
        if sample.engine is not None:
            return self._fill_engine(sample, sample.engine)
        if sample.mean_in_flight < 0.75 * sample.limit:
            return self._limit  # not enough demand to learn anything about the engine
        if self._action == "grow":
            return self._after_grow(sample)
        if self._action == "shrink":
            return self._after_shrink(sample)
        return self._hold(sample)

    def _fill_engine(self, sample: WindowSample, engine: EngineOccupancy) -> int:
        """Follows the engine's occupancy: grow while it runs all it gets, stop at its queue.

        A continuous-batching engine gains throughput with every request it runs at once
        until its slots or its KV cache are full; from then on it queues what it gets, and a
        larger window only adds latency. The window keeps what the engine runs plus a small
        standing queue, so that a freed slot refills at once instead of waiting for our next
        request to cross the network.
        """
        if sample.mean_in_flight > _SETTLED * sample.limit:
            return self._limit  # still draining down to a lower limit: nothing to read yet
        queue = max(_MIN_QUEUE, _QUEUE_SHARE * engine.running)
        if engine.waiting > queue:
            # Our share of the excess (several workers may feed one engine).
            share = min(1.0, sample.mean_in_flight / max(1.0, engine.running + engine.waiting))
            self._limit = self._clamp(self._limit - (engine.waiting - queue) * share)
            self._settle(sample.throughput)
            self._full_at = self._limit
            return self._limit
        demand = sample.mean_in_flight >= 0.75 * sample.limit
        memory = engine.kv_cache_usage is None or engine.kv_cache_usage < _KV_GROWTH_LIMIT
        seen = engine.running + engine.waiting >= _SEEN * sample.mean_in_flight
        self._stable += 1
        if not (demand and memory and seen) or self._limit >= self._max:
            return self._limit
        if self._full_at is not None and self._stable < self._probe_every:
            return self._limit  # the engine was full here lately: probe up now and then only
        # Until the engine first fills: x4 while its KV cache is mostly free, else x2; then
        # x1.25 probes.
        roomy = engine.kv_cache_usage is not None and engine.kv_cache_usage < _KV_ROOMY
        step = (4.0 if roomy else 2.0) if self._full_at is None else 1.25
        self._limit = self._clamp(max(self._limit + 1, self._limit * step))
        self._stable = 0
        return self._limit

    def _back_off(self, sample: WindowSample) -> int:
        self._limit = self._clamp(min(self._limit, sample.mean_in_flight) * 0.75)
        self._settle(throughput=0.0)
        return self._limit

    def _after_grow(self, sample: WindowSample) -> int:
        here = (self._limit, sample.throughput)
        if not self._larger_pays(here, (self._base_limit, self._base_throughput)):
            # The step did not pay: go back to where we came from.
            self._limit = self._base_limit
            self._settle(self._base_throughput)
        elif self._limit < self._max:
            self._base_limit, self._base_throughput = here
            self._limit = self._clamp(max(self._limit + 1, self._limit * self._step))
        else:
            self._settle(sample.throughput)  # at the maximum and still gaining: stay
        return self._limit

    def _after_shrink(self, sample: WindowSample) -> int:
        # Measured against the level where the descent began, so small losses do not add
        # up (measured against each previous step, noise ratcheted the window down).
        here = (self._limit, sample.throughput)
        if self._larger_pays((self._ref_limit, self._ref_throughput), here):
            self._limit = self._base_limit  # the last window that kept its share
            self._settle(self._base_throughput)
        elif self._limit > self._min:
            self._base_limit, self._base_throughput = here  # keep it, try one step lower
            self._limit = self._clamp(min(self._limit - 1, self._limit / 1.25))
        else:
            self._settle(sample.throughput)
        return self._limit

    def _hold(self, sample: WindowSample) -> int:
        # Track the current level slowly so a change of workload is noticed.
        if self._base_throughput == 0.0:
            self._base_throughput = sample.throughput
        self._base_throughput = 0.7 * self._base_throughput + 0.3 * sample.throughput
        self._stable += 1
        if self._stable < self._probe_every:
            return self._limit
        self._base_limit = self._limit
        self._ref_limit, self._ref_throughput = self._limit, self._base_throughput
        self._probe_down_next = not self._probe_down_next
        if self._probe_down_next and self._limit > self._min:
            self._action = "shrink"
            self._limit = self._clamp(min(self._limit - 1, self._limit / 1.25))
        elif self._limit < self._max:
            self._action, self._step = "grow", 1.25
            self._limit = self._clamp(max(self._limit + 1, self._limit * 1.25))
        return self._limit

    def _settle(self, throughput: float) -> None:
        """Holds the current limit; ``throughput`` is its level (0: measure it afresh)."""
        self._action = "hold"
        self._base_limit = self._limit
        self._base_throughput = throughput
        self._stable = 0


def configured_policy(window: WindowSettings, start: int) -> WindowPolicy:
    """The policy ``window`` configures, starting at ``start``."""
    if window.policy == "fixed":
        return FixedWindowPolicy(window.size)
    return AdaptiveWindowPolicy(start, window.min, window.max)


def start_limit(window: WindowSettings) -> int:
    """The window's first limit: its size, within its bounds where it adapts."""
    if window.policy == "fixed":
        return window.size
    return min(max(window.size, window.min), window.max)
