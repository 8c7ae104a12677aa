"""Watches the engine's health and opens or closes the admission gate.

While the circuit is open the window admits nothing (the partitions pause through
backpressure), requests in flight wait, and a health probe with exponential backoff
decides when to resume. Nothing is dead-lettered because the engine is down.
"""

from __future__ import annotations

import asyncio
import logging

from consumer.admission import AdmissionWindow
from consumer.backends.base import Backend
from consumer.backoff import ENGINE_PROBE
from consumer.failure_table import EngineCircuit
from consumer.metrics import Metrics

log = logging.getLogger(__name__)

_CHECK_S = 0.2
_HEALTHY_PROBE_S = 5.0


class EngineMonitor:
    """Keeps ``engine_up`` current and drives the circuit's recovery."""

    def __init__(
        self, backend: Backend, circuit: EngineCircuit, window: AdmissionWindow, metrics: Metrics
    ) -> None:
        self._backend = backend
        self._circuit = circuit
        self._window = window
        self._metrics = metrics
        self.healthy = False

    async def run(self) -> None:
        """Monitors forever; cancel the task to stop."""
        since_probe = _HEALTHY_PROBE_S
        while True:
            if self._circuit.is_open:
                await self._recover()
                since_probe = 0.0
            elif since_probe >= _HEALTHY_PROBE_S:
                await self._set_health(await self._backend.health())
                since_probe = 0.0
            await asyncio.sleep(_CHECK_S)
            since_probe += _CHECK_S

    async def _set_health(self, healthy: bool) -> None:
        self.healthy = healthy
        self._metrics.engine_up.set(1 if healthy else 0)

    async def _recover(self) -> None:
        log.warning("engine unreachable: circuit open, admissions stopped")
        self._window.close()
        self._metrics.circuit_open.set(1)
        await self._set_health(False)
        await ENGINE_PROBE.until(self._backend.health)
        await self._set_health(True)
        self._circuit.close()
        self._window.open()
        self._metrics.circuit_open.set(0)
        log.warning("engine healthy again: circuit closed, admissions resumed")
