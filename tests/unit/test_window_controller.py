"""WindowController: how long a sample lasts, on engines slow and overloaded."""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from consumer.admission import AdmissionWindow
from consumer.backends.base import EngineLoad
from consumer.logs import ContextTextFormatter
from consumer.metrics import Metrics
from consumer.window_controller import WindowController, describe_move, relative_error
from consumer.window_policy import EngineOccupancy, WindowSample

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


def test_a_sample_of_a_slow_engine_spans_four_turnovers() -> None:
    # 16 completions (4 turnovers of 4) take ~0.48 s: 48 intervals, more than the 15 that
    # used to end a sample before a slow engine had finished one turnover.
    async def scenario() -> tuple[WindowSample, float]:
        control, policy, _ = controller(4)
        started = time.monotonic()
        feed = asyncio.create_task(complete_every(control, 0.03))
        sample = await first_sample(control, policy, feed)
        return sample, time.monotonic() - started

    sample, elapsed = asyncio.run(scenario())
    # Completions in the sample: warm-up takes a turnover (4), the sample itself at least 16.
    assert sample.throughput * sample.seconds >= 16 * 0.9
    assert elapsed >= sample.seconds + 4 * 0.03
    assert not sample.overloaded
    assert sample.relative_error < float("inf")  # estimated, from four parts or more


def test_a_bursty_engine_is_sampled_until_the_turnover_cap() -> None:
    # Bursts of 1 and 7 completions in turn (a window of 4): one-turnover batches differ by
    # far more than 1.5%, so the sample goes on to 12 turnovers (48 completions).
    async def bursts(control: WindowController) -> None:
        size = 1
        while True:
            await asyncio.sleep(0.06)
            for _ in range(size):
                control.completed()
            size = 8 - size

    async def scenario() -> WindowSample:
        control, policy, _ = controller(4)
        return await first_sample(control, policy, asyncio.create_task(bursts(control)))

    sample = asyncio.run(scenario())
    assert sample.relative_error > 0.015
    assert sample.throughput * sample.seconds >= 48


def test_an_overload_signal_ends_the_sample_without_waiting_for_turnovers() -> None:
    async def scenario() -> tuple[WindowSample, float]:
        control, policy, _ = controller(4)
        started = time.monotonic()

        async def feed() -> None:
            await complete_every_n(control, 4)  # warm-up: a turnover
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


def test_relative_error_of_a_steady_rate_is_zero_and_of_bursts_large() -> None:
    steady = [(i + 0.5) / 10 for i in range(100)]  # 10 completions a second for 10 s
    assert relative_error(steady, 0.0, 10.0, 5) == 0.0
    # 20 at once every 2 s: one-second parts hold 20 or 0 in turn.
    bursts = [float(t) for t in range(1, 10, 2) for _ in range(20)]
    error = relative_error(bursts, 0.0, 10.0, 10)
    # stdev of 0, 20, 0, ... (10.54) / √10, over the mean rate of 10 a second
    assert error == pytest.approx((1000 / 9) ** 0.5 / 10**0.5 / 10)
    assert relative_error(steady, 0.0, 10.0, 1) == float("inf")  # one part says nothing
    assert relative_error([], 0.0, 1.0, 2) == float("inf")  # nothing completed


class MovesOnce(Recording):
    """A policy that doubles the limit after its first sample."""

    def next_limit(self, sample: WindowSample) -> int:
        super().next_limit(sample)
        return sample.limit * 2 if len(self.samples) == 1 else sample.limit


def test_the_window_sweep_reads_the_moves_the_controller_logs(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    async def scenario() -> WindowSample:
        window = AdmissionWindow(4)
        window.admit(4)
        policy = MovesOnce()
        metrics = Metrics(CollectorRegistry(), "w")
        control = WindowController(window, policy, NoLoad(), metrics, INTERVAL_S)  # type: ignore[arg-type]
        return await first_sample(
            control, policy, asyncio.create_task(complete_every(control, 0.01))
        )

    with caplog.at_level(logging.INFO, logger="consumer.window_controller"):
        sample = asyncio.run(scenario())
    # The worker's text log, as `configure_logging` formats it.
    formatter = ContextTextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = tmp_path / "worker.log"
    log.write_text("".join(formatter.format(record) + "\n" for record in caplog.records))

    moves = importlib.import_module("benchmarks.window_sweep").window_moves(log)

    assert moves["limits"] == [4, 8]
    (move,) = moves["moves"]
    assert move["requests_per_s"] == pytest.approx(sample.throughput, abs=0.05)
    assert move["relative_error"] == pytest.approx(sample.relative_error, abs=0.0005)
    assert move["sample_s"] == pytest.approx(sample.seconds, abs=0.5)
    assert move["overloaded"] is False


def test_the_window_sweep_reads_a_move_made_on_the_engine_s_occupancy(tmp_path: Path) -> None:
    engine = EngineOccupancy(running=31, waiting=0, kv_cache_usage=0.4)
    sample = WindowSample(32, 45.25, 31, False, seconds=1.2, engine=engine)
    log = tmp_path / "worker.log"
    log.write_text(
        "2026-12-04 10:00:00,000 INFO consumer.window_controller: "
        f"window 32 -> 64 ({describe_move(sample)})\n"
    )

    moves = importlib.import_module("benchmarks.window_sweep").window_moves(log)

    assert moves["limits"] == [32, 64]
    (move,) = moves["moves"]
    assert move["requests_per_s"] == pytest.approx(45.2)
    assert move["relative_error"] is None
