"""The worker's status: the gauges kept current, one log line to follow a run by, the probes.

`/healthz` (liveness) is red once a part died (the supervisor's cause), or when the event loop
or the consumer thread stopped ticking; `/readyz` says the worker can do useful work.
"""

from __future__ import annotations

import asyncio
import logging
import time

from consumer.engine_monitor import EngineMonitor
from consumer.failure_table import EngineCircuit
from consumer.lanes import BULK, LANES
from consumer.ledger import RequestLedger
from consumer.metrics import Metrics
from consumer.request_source import RequestSource

log = logging.getLogger("consumer.worker")

_TICK_S = 0.5
_LINE_EVERY = 20  # ticks: one status line every 10 s
_LOOP_STUCK_S = 10.0
_SOURCE_STUCK_S = 30.0


class StatusReporter:
    """Keeps the gauges and the probes of one worker (event loop).

    Args:
        ledger: the request ledger.
        source: the consumer (its pauses, its last poll).
        metrics: the metrics catalogue.
        circuit: the engine circuit.
        monitor: the engine monitor (engine health).
    """

    def __init__(
        self,
        ledger: RequestLedger,
        source: RequestSource,
        metrics: Metrics,
        circuit: EngineCircuit,
        monitor: EngineMonitor,
    ) -> None:
        self._ledger = ledger
        self._source = source
        self._metrics = metrics
        self._circuit = circuit
        self._monitor = monitor
        self._started = False
        self._draining = False
        self._die = False  # test-only: the next tick raises (`inject_death`)
        self.last_tick = time.monotonic()

    async def run(self) -> None:
        """Ticks until cancelled."""
        self._started = True
        ticks = 0
        while True:
            if self._die:
                raise RuntimeError("test fault: the status reporter was told to die (SIGUSR1)")
            ticks += 1
            if ticks % _LINE_EVERY == 0:
                self._log_status()
            self.last_tick = time.monotonic()
            for lane in LANES:
                self._metrics.buffered[lane].set(self._ledger.queued_of(lane))
            self._metrics.in_flight.set(self._ledger.window.in_flight)
            self._metrics.paused_partitions.set(self._source.paused_count())
            await asyncio.sleep(_TICK_S)

    def inject_death(self) -> None:
        """Test-only (``test_faults``, SIGUSR1): this task raises at its next tick."""
        self._die = True

    def _log_status(self) -> None:
        window = self._ledger.window
        log.info(
            "status: %d partitions%s, %d held, %d buffered, %d/%d in flight, %d incomplete",
            len(self._ledger.partitions),
            " (bulk paused)" if self._source.paused(BULK) else "",
            self._ledger.held(),
            sum(self._ledger.queued_of(lane) for lane in LANES),
            window.in_flight,
            window.limit,
            self._ledger.partitions.incomplete(),
        )

    def rebalanced(self, kind: str, count: int) -> None:
        """Partitions were assigned, revoked or lost."""
        self._metrics.rebalance(kind, count)
        self._metrics.assigned_partitions.set(len(self._ledger.partitions))

    def stopping(self, grace_s: float) -> None:
        """The shutdown began."""
        self._draining = True
        log.info("shutting down: draining for up to %.0fs", grace_s)

    def stopped(self) -> None:
        """The shutdown ended."""
        log.info("stopped")

    def live(self, failure: str | None) -> tuple[bool, str]:
        """Liveness: no part died; the event loop and the consumer thread both ticked."""
        if failure is not None:
            return False, f"failed: {failure}"
        if not self._started:
            return True, "starting: waiting for the engine"
        now = time.monotonic()
        loop_ok = now - self.last_tick < _LOOP_STUCK_S
        source_ok = now - self._source.last_poll_monotonic < _SOURCE_STUCK_S
        return (
            loop_ok and source_ok,
            f"loop={'ok' if loop_ok else 'stuck'} consumer={'ok' if source_ok else 'stuck'}",
        )

    def ready(self, kafka_problem: str | None) -> tuple[bool, str]:
        """Readiness: consuming, engine healthy, circuit closed, not draining."""
        ok = (
            self._started
            and kafka_problem is None
            and self._monitor.healthy
            and not self._circuit.is_open
            and not self._draining
        )
        detail = (
            f"engine={'up' if self._monitor.healthy else 'down'} "
            f"assigned={len(self._ledger.partitions)}"
        )
        return ok, detail if kafka_problem is None else f"{kafka_problem}; {detail}"
