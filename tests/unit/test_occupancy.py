"""The window following an engine's occupancy: the policy's rule and the sampler."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from consumer.admission import AdmissionWindow
from consumer.backends.base import EngineLoad
from consumer.backends.openai import engine_load
from consumer.metrics import Metrics
from consumer.occupancy import OccupancySampler
from consumer.window_policy import AdaptiveWindowPolicy, EngineOccupancy, WindowSample
from tests.unit.fake_clock import FakeClock

pytestmark = pytest.mark.timeout(20)


class Engine:
    """An engine with ``slots`` slots: it runs what fits and queues the rest."""

    def __init__(self, slots: int, kv_per_request: float = 0.0) -> None:
        self.slots = slots
        self.kv_per_request = kv_per_request

    def occupancy(self, in_flight: int) -> EngineOccupancy:
        running = min(in_flight, self.slots)
        return EngineOccupancy(
            running=running,
            waiting=in_flight - running,
            kv_cache_usage=min(1.0, running * self.kv_per_request),
        )


def follow(policy: AdaptiveWindowPolicy, engine: Engine, start: int, steps: int) -> list[int]:
    limit, limits = start, []
    for _ in range(steps):
        sample = WindowSample(limit, 1.0, limit, False, engine=engine.occupancy(limit))
        limit = policy.next_limit(sample)
        limits.append(limit)
    return limits


def test_climbs_while_the_engine_runs_everything_then_stops_at_its_slots() -> None:
    policy = AdaptiveWindowPolicy(start=32, minimum=4, maximum=4096)
    # x4 while the KV cache is under a quarter full (1/4000 per request).
    limits = follow(policy, Engine(slots=1000, kv_per_request=1 / 4000), 32, 40)
    assert limits[:4] == [128, 512, 2048, 1050]  # the overshoot comes back at once
    # Past the slots the engine queues: the window keeps the slots and a small queue, and
    # probes up now and then (the engine's room may grow) without ever leaving slots idle.
    late = limits[10:]
    assert min(late) >= 1000, late
    assert sorted(late)[len(late) // 2] <= 1000 + 0.05 * 1000, late
    assert sum(x > 1050 for x in late) <= len(late) // 8 + 1, late


def test_stops_growing_when_the_kv_cache_is_nearly_full() -> None:
    policy = AdaptiveWindowPolicy(start=32, minimum=4, maximum=4096)
    limits = follow(policy, Engine(slots=4096, kv_per_request=1 / 300), 32, 20)
    assert max(limits) == 512  # 256 runs at 0.85 of the cache, 512 at 1.0: no further
    assert limits[-1] == 512


def test_holds_when_demand_does_not_fill_the_window() -> None:
    policy = AdaptiveWindowPolicy(start=64, minimum=4, maximum=4096)
    idle = EngineOccupancy(running=10, waiting=0)
    assert policy.next_limit(WindowSample(64, 5.0, 10, False, engine=idle)) == 64


def test_holds_until_the_engine_has_seen_what_is_in_flight() -> None:
    # llama-server on two CPU cores, 32 long prompts sent at once: a second later it has
    # taken in 5 of them. Growing then admitted every request of the backlog (window 256).
    policy = AdaptiveWindowPolicy(start=32, minimum=4, maximum=4096)
    arriving = EngineOccupancy(running=4, waiting=1)
    assert policy.next_limit(WindowSample(32, 0.0, 32, False, engine=arriving)) == 32
    arrived = EngineOccupancy(running=4, waiting=28)
    assert policy.next_limit(WindowSample(32, 0.0, 32, False, engine=arrived)) == 6  # 4 + 2


def test_reaches_the_maximum_on_an_engine_with_room() -> None:
    policy = AdaptiveWindowPolicy(start=32, minimum=4, maximum=1024)
    assert follow(policy, Engine(slots=100_000), 32, 10)[-1] == 1024


def test_doubles_without_a_kv_cache_reading() -> None:
    policy = AdaptiveWindowPolicy(start=32, minimum=4, maximum=1024)
    limits, limit = [], 32
    for _ in range(3):
        idle = EngineOccupancy(running=limit, waiting=0)
        limit = policy.next_limit(WindowSample(limit, 1.0, limit, False, engine=idle))
        limits.append(limit)
    assert limits == [64, 128, 256]


class Backend:
    """Reports the occupancy of ``Engine`` for the window's in-flight count, as /metrics would."""

    def __init__(self, window: AdmissionWindow, engine: Engine, prefill: list[float]) -> None:
        self.window, self.engine, self.prefill = window, engine, prefill
        self.polls = 0

    async def load(self) -> EngineLoad | None:
        self.polls += 1
        occupancy = self.engine.occupancy(self.window.in_flight)
        extra = self.prefill.pop(0) if self.prefill else 0.0
        return EngineLoad(occupancy.running, occupancy.waiting + extra, occupancy.kv_cache_usage)


class Counts:
    counts = (0, 0)


INTERVAL_S = 0.02


async def sample_at(window: AdmissionWindow, backend: Backend, limit: int) -> WindowSample | None:
    """One sample on a fake clock: its half-interval pause and its polls take no real time."""
    clock = FakeClock()
    metrics = Metrics(CollectorRegistry(), "w")
    sampler = OccupancySampler(window, backend, metrics, INTERVAL_S, Counts(), clock)  # type: ignore[arg-type]
    task = asyncio.create_task(sampler.sample(limit))
    await clock.run_until(task.done, limit_s=60.0)
    return task.result()


async def test_a_sample_reads_the_slots_and_the_standing_queue() -> None:
    window = AdmissionWindow(300)
    window.admit(300)
    backend = Backend(window, Engine(slots=256), [])
    sample = await sample_at(window, backend, 300)
    assert sample is not None
    assert sample.engine == EngineOccupancy(running=256, waiting=44, kv_cache_usage=0.0)
    assert sample.mean_in_flight == 300
    # Half an interval to settle, then the minimum of four polls an eighth of one apart.
    assert backend.polls == 4
    assert sample.seconds == pytest.approx(4 * INTERVAL_S / 8)


async def test_a_queue_still_draining_after_a_step_up_extends_the_sample() -> None:
    window = AdmissionWindow(200)
    window.admit(200)
    # Prefill backlog of a step up: 400, 300, ... 0 waiting, then none.
    backlog = [400.0, 300.0, 200.0, 100.0, 50.0, 10.0, 0.0, 0.0]
    backend = Backend(window, Engine(slots=256), list(backlog))
    sample = await sample_at(window, backend, 200)
    assert sample is not None
    assert sample.engine is not None
    assert sample.engine.waiting == 0  # the backlog was not read as a full engine
    # Until the 10th poll, the last four polls still show a queue above 4 falling steeply
    # (at the 9th: 10, 0, 0, 0); the 10th sees four empty queues and ends the sample.
    assert backend.polls == 10
    assert sample.seconds == pytest.approx(10 * INTERVAL_S / 8)


async def test_a_moved_limit_discards_the_sample() -> None:
    window = AdmissionWindow(100)
    backend = Backend(window, Engine(slots=256), [])
    window.set_limit(50)
    assert await sample_at(window, backend, 100) is None
    assert backend.polls == 1  # the first poll saw the move


def test_a_window_still_draining_after_a_step_down_is_not_read() -> None:
    policy = AdaptiveWindowPolicy(start=254, minimum=4, maximum=4096)
    # 483 still in flight under a limit of 254: the engine's queue is the old window's.
    draining = EngineOccupancy(running=256, waiting=227)
    assert policy.next_limit(WindowSample(254, 50.0, 483, False, engine=draining)) == 254


def test_llama_server_gauges_are_an_occupancy_without_kv_cache() -> None:
    llama = {"llamacpp:requests_processing": 4.0, "llamacpp:requests_deferred": 7.0}
    assert engine_load(llama) == EngineLoad(running=4.0, waiting=7.0, kv_cache_usage=None)
    vllm = {"vllm:num_requests_running": 9.0, "vllm:num_requests_waiting": 1.0}
    assert engine_load(vllm | {"vllm:kv_cache_usage_perc": 0.5}) == EngineLoad(9.0, 1.0, 0.5)
    assert engine_load({"llamacpp:prompt_tokens_total": 10.0}) is None  # started without a queue
