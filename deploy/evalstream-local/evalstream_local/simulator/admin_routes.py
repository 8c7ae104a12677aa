"""Simulator-only routes under ``/_simulator/``: switch faults, read counters.

``POST /_simulator/faults`` takes ``{"mode", "duration_s", "rate"}`` (see
:mod:`evalstream_local.simulator.faults`) and answers the fault now in force;
``GET /_simulator/faults`` reads it. ``GET /_simulator/stats`` returns the request counters of
:class:`SimulatorStats` with the engine's live load. No real engine has these routes; nothing but
tests and demos should call them.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from evalstream_local.simulator.faults import FaultConfig, FaultInjector
from evalstream_local.simulator.generator import Generator


class AdminRoutes:
    """The ``/_simulator`` routes over one generator and fault switch."""

    def __init__(self, generator: Generator, faults: FaultInjector) -> None:
        self.generator = generator
        self.faults = faults

    def register(self, app: web.Application) -> None:
        """Adds the routes to ``app``."""
        app.router.add_post("/_simulator/faults", self.set_fault)
        app.router.add_get("/_simulator/faults", self.get_fault)
        app.router.add_get("/_simulator/stats", self.stats)

    async def set_fault(self, request: web.Request) -> web.Response:
        """``POST /_simulator/faults``."""
        try:
            config = FaultConfig.parse(json.loads(await request.read() or b"{}"))
        except (ValueError, UnicodeDecodeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        self.faults.set(config)
        return web.json_response(self.faults.to_json())

    async def get_fault(self, _request: web.Request) -> web.Response:
        """``GET /_simulator/faults``."""
        return web.json_response(self.faults.to_json())

    async def stats(self, _request: web.Request) -> web.Response:
        """``GET /_simulator/stats``."""
        return web.json_response(self.snapshot())

    def snapshot(self) -> dict[str, Any]:
        """Counters, live load and the fault in force, as one JSON object."""
        stats = self.generator.stats
        gauges = self.generator.scheduler.gauges()
        queries = gauges.prefix_cache_queries_total
        return {
            "profile": self.generator.profile.name,
            "received": stats.received,
            "completed": stats.completed,
            "aborted": stats.aborted,
            "rejected": stats.rejected,
            "errors": stats.errors,
            "by_status": {str(k): v for k, v in sorted(stats.by_status.items())},
            "running": gauges.running,
            "waiting": gauges.waiting,
            "kv_cache_usage": gauges.kv_cache_usage,
            "steps": gauges.steps_total,
            "preemptions": gauges.preemptions_total,
            "prompt_tokens": gauges.prompt_tokens_total,
            "generation_tokens": gauges.generation_tokens_total,
            "prefix_cache_hit_rate": gauges.prefix_cache_hits_total / queries if queries else 0.0,
            "finished": gauges.finished_total,
            "fault": self.faults.to_json(),
        }
