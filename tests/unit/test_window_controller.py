"""WindowController: how long a sample lasts, on engines slow and overloaded."""

from __future__ import annotations

import asyncio
import time

from prometheus_client import CollectorRegistry

from consumer.admission import AdmissionWindow
from consumer.backends.base import EngineLoad
from consumer.metrics import Metrics
from consumer.window_controller import WindowController
from consumer.window_policy import WindowSample

INTERVAL_S = 0.01


class NoLoad:
    """An engine that reports no queue (Ollama's case: overload comes as HTTP 503)."""

    async def load(self) -> EngineLoad | None:
        return None


class Recording:
    """A policy that keeps the limit and records every sample."""

    def __init__(self) -> None:
        self.samples: list[WindowSample] = []
        self.sampled = asyncio.Event()

    def next_limit(self, sample: WindowSample) -> int:
        self.samples.append(sample)
        self.sampled.set()
        return sample.limit


def controller(limit: int) -> tuple[WindowController, Recording, AdmissionWindow]:
    window = AdmissionWindow(limit)
    window.admit(limit)  # the window is full for the whole test
    policy = Recording()
    metrics = Metrics(CollectorRegistry(), "w")
    control = WindowController(window, policy, NoLoad(), metrics, INTERVAL_S)  # type: ignore[arg-type]
    return control, policy, window


async def first_sample(
    control: WindowController, policy: Recording, feed: asyncio.Task[None]
) -> WindowSample:
    task = asyncio.create_task(control.run())
    try:
        await policy.sampled.wait()
    finally:
        task.cancel()
        feed.cancel()
    return policy.samples[0]


async def complete_every(control: WindowController, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        control.completed()


def test_a_sample_of_a_slow_engine_spans_three_turnovers() -> None:
    # 12 completions (3 turnovers of 4) take ~0.36 s: 36 intervals, more than the 15 that
    # used to end a sample before a slow engine had finished one turnover.
    async def scenario() -> tuple[WindowSample, float]:
        control, policy, _ = controller(4)
        started = time.monotonic()
        feed = asyncio.create_task(complete_every(control, 0.03))
        sample = await first_sample(control, policy, feed)
        return sample, time.monotonic() - started

    sample, elapsed = asyncio.run(scenario())
    # Completions in the sample: warm-up takes 2, the sample itself at least 12.
    assert sample.throughput * (elapsed - 2 * 0.03) >= 12 * 0.9
    assert not sample.overloaded


def test_an_overload_signal_ends_the_sample_without_waiting_for_turnovers() -> None:
    async def scenario() -> tuple[WindowSample, float]:
        control, policy, _ = controller(4)
        started = time.monotonic()

        async def feed() -> None:
            await complete_every_n(control, 2)  # warm-up: half a window
            await asyncio.sleep(0.3)  # three of the controller's ticks: the sample has begun
            control.overloaded()
            await asyncio.sleep(3600)

        sample = await first_sample(control, policy, asyncio.create_task(feed()))
        return sample, time.monotonic() - started

    sample, elapsed = asyncio.run(scenario())
    assert sample.overloaded
    assert sample.throughput == 0.0  # no request completed in the sample
    # Ended by the signal (~0.4 s), not by the sample's time limit (150 intervals = 1.5 s).
    assert elapsed < 1.2


async def complete_every_n(control: WindowController, n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(INTERVAL_S)
        control.completed()
