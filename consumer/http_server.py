"""The worker's HTTP endpoint: ``/metrics``, ``/healthz`` and ``/readyz`` on one port.

``/healthz`` says the process is alive (event loop and consumer thread both ticked
recently): a failing liveness probe restarts the pod. ``/readyz`` says the worker
can do useful work (consumer running, engine healthy, circuit closed).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

Check = Callable[[], tuple[bool, str]]


class HealthServer:
    """Serves metrics and probes.

    Args:
        registry: the metrics registry to expose.
        live: returns (alive, detail) for ``/healthz``.
        ready: returns (ready, detail) for ``/readyz``.
    """

    def __init__(self, registry: CollectorRegistry, live: Check, ready: Check) -> None:
        self._registry = registry
        self._live = live
        self._ready = ready
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> None:
        """Binds and serves; ``port`` 0 picks a free one (see ``self.port``)."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._probe(self._live))
        app.router.add_get("/readyz", self._probe(self._ready))
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port

    async def stop(self) -> None:
        """Stops serving."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def _metrics(self, _request: web.Request) -> web.Response:
        body = generate_latest(self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    @staticmethod
    def _probe(check: Check) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(_request: web.Request) -> web.StreamResponse:
            ok, detail = check()
            return web.Response(status=200 if ok else 503, text=detail + "\n")

        return handler
