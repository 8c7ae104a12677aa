"""The engine simulator: a real HTTP server speaking vLLM's and Ollama's APIs over a latency model.

:class:`EngineSimulator` wires the parts: the profile's :class:`Scheduler` (continuous batching),
the :class:`Generator` (answers, faults, aborts), the vLLM/OpenAI, Ollama and ``/_simulator``
routes, on one aiohttp server. Use it in-process::

    async with EngineSimulator(profile="vllm", time_scale=20) as sim:
        ...  # talk to sim.url

from synchronous code in a background thread (``with EngineSimulator(...).in_thread() as sim``),
or in the foreground with :func:`serve` (the ``evalstream-local engine`` command), which prints
``url=http://127.0.0.1:PORT`` first and runs until SIGTERM or SIGINT.

Handlers are cancelled when their client disconnects (``handler_cancellation``), which aborts the
request's sequences: a closed HTTP request frees its batch slot, as in vLLM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from types import TracebackType
from typing import Any

from aiohttp import web

from evalstream_local.simulator.admin_routes import AdminRoutes
from evalstream_local.simulator.faults import FaultConfig, FaultInjector
from evalstream_local.simulator.generator import Generator, SimulatorStats
from evalstream_local.simulator.ollama_routes import OllamaRoutes
from evalstream_local.simulator.openai_routes import OpenAIRoutes
from evalstream_local.simulator.profile import PROFILE_NAMES, SimulatorProfile, load_profile
from evalstream_local.simulator.scheduler import Scheduler

GENERATION_PATHS = frozenset(
    {"/v1/chat/completions", "/v1/completions", "/api/chat", "/api/generate"}
)
# In-flight handlers (hung ones included) get this long to end when the server stops.
_SHUTDOWN_TIMEOUT_S = 1.0


class EngineSimulator:
    """A simulated inference engine on a local port.

    Args:
        profile: ``"vllm"``, ``"ollama"``, ``"instant"`` or a :class:`SimulatorProfile`.
        host: Interface to bind.
        port: Port to bind; 0 or ``None`` picks a free one (see :attr:`url`).
        api_key: When set, ``/v1`` routes require ``Authorization: Bearer <api_key>``.
        fault: Fault active from the start: a mode name or ``{"mode", "duration_s", "rate"}``.
        seed: Seed of the fault draws.
        **options: Profile fields to override, e.g. ``time_scale=20`` (20x faster),
            ``max_num_seqs=64``, ``num_parallel=2``, ``max_queue=8``, ``models=["m"]``.
    """

    def __init__(
        self,
        profile: str | SimulatorProfile = "vllm",
        *,
        host: str = "127.0.0.1",
        port: int | None = 0,
        api_key: str | None = None,
        fault: str | dict[str, Any] | FaultConfig | None = None,
        seed: int = 0,
        **options: Any,
    ) -> None:
        if isinstance(profile, SimulatorProfile):
            self.profile = profile.with_options(**options)
        else:
            self.profile = load_profile(profile, **options)
        config = fault if isinstance(fault, FaultConfig) else FaultConfig.parse(fault or {})
        self.faults = FaultInjector(config, seed=seed)
        self.scheduler = Scheduler(self.profile)
        self.generator = Generator(self.profile, self.scheduler, self.faults)
        self.admin = AdminRoutes(self.generator, self.faults)
        self.host = host
        self.port = port or 0
        self.app = self._build_app(api_key)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """Base URL of the running server (``http://127.0.0.1:PORT``, no trailing slash)."""
        if self._runner is None:
            raise RuntimeError("the simulator is not running")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    @property
    def stats(self) -> SimulatorStats:
        """Request counters (also at ``GET /_simulator/stats``)."""
        return self.generator.stats

    def set_fault(self, mode: str, duration_s: float | None = None, rate: float = 1.0) -> None:
        """Switches the fault in force (as ``POST /_simulator/faults`` does)."""
        self.faults.set(FaultConfig.parse({"mode": mode, "duration_s": duration_s, "rate": rate}))

    async def start(self) -> str:
        """Starts the engine loop and the HTTP server; returns :attr:`url`."""
        await self.scheduler.start()
        runner = web.AppRunner(
            self.app,
            handler_cancellation=True,
            access_log=None,
            shutdown_timeout=_SHUTDOWN_TIMEOUT_S,
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        return self.url

    async def stop(self) -> None:
        """Aborts what is in flight and closes the server."""
        await self.scheduler.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> EngineSimulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @contextlib.contextmanager
    def in_thread(self) -> Iterator[EngineSimulator]:
        """Runs the simulator on its own event loop in a daemon thread, for synchronous code."""
        thread = _SimulatorThread(self)
        thread.start()
        try:
            yield self
        finally:
            thread.stop()

    def _build_app(self, api_key: str | None) -> web.Application:
        app = web.Application(middlewares=[self._count_requests], client_max_size=64 * 2**20)
        OpenAIRoutes(self.generator, api_key).register(app)
        OllamaRoutes(self.generator).register(app)
        self.admin.register(app)
        return app

    @web.middleware
    async def _count_requests(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.method != "POST" or request.path not in GENERATION_PATHS:
            return await handler(request)
        stats = self.generator.stats
        stats.received += 1
        try:
            response = await handler(request)
        except (asyncio.CancelledError, ConnectionError):
            raise  # the client left; the generator counted the abort
        except Exception:
            stats.record(500)
            raise
        stats.record(response.status)
        return response


class _SimulatorThread:
    """Owns the event loop a simulator runs on when driven from synchronous code."""

    def __init__(self, simulator: EngineSimulator) -> None:
        self._simulator = simulator
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="engine-simulator", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise RuntimeError("the engine simulator failed to start") from self._error

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join()

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        try:
            await self._simulator.start()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            await self._simulator.stop()


def serve(
    profile: str = "vllm", port: int | None = None, host: str = "127.0.0.1", **options: Any
) -> int:
    """Runs a simulator in the foreground until SIGTERM or SIGINT; returns the exit status 0.

    The first line on stdout is ``url=http://HOST:PORT`` (the bound port when ``port`` is 0 or
    ``None``), flushed at once, so a parent process can read where to connect.
    """
    return asyncio.run(_serve(profile, port, host, options))


async def _serve(profile: str, port: int | None, host: str, options: dict[str, Any]) -> int:
    simulator = EngineSimulator(profile, host=host, port=port, **options)
    await simulator.start()
    print(f"url={simulator.url}", flush=True)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    try:
        await stopping.wait()
    finally:
        await simulator.stop()
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``evalstream-local engine`` (see :func:`main`)."""
    parser = argparse.ArgumentParser(
        prog="evalstream-local engine",
        description="Run the engine simulator: a vLLM/Ollama-compatible HTTP server with a "
        "latency model of continuous batching (no GPU, no model).",
    )
    parser.add_argument(
        "--profile",
        choices=PROFILE_NAMES,
        default="vllm",
        help="latency profile of the simulator (default: vllm)",
    )
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind")
    parser.add_argument(
        "--time-scale",
        type=float,
        default=None,
        help="simulated time runs this much faster than real time (default 1)",
    )
    parser.add_argument(
        "--model",
        action="append",
        dest="models",
        default=None,
        help="served model name (repeatable)",
    )
    parser.add_argument("--api-key", default=None, help="require this bearer token on /v1")
    parser.add_argument("--max-num-seqs", type=int, default=None)
    parser.add_argument("--max-num-batched-tokens", type=int, default=None)
    parser.add_argument("--num-parallel", type=int, default=None, help="Ollama slots")
    parser.add_argument("--max-queue", type=int, default=None, help="Ollama pending-queue limit")
    parser.add_argument("--fault", default=None, help="fault mode active from the start")
    parser.add_argument(
        "--scheduling-policy",
        choices=["fcfs", "priority"],
        default=None,
        help="vLLM's: with priority, requests with a lower `priority` are scheduled first",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parses ``argv`` and calls :func:`serve`."""
    args = build_parser().parse_args(argv)
    options = {
        k: v
        for k, v in {
            "time_scale": args.time_scale,
            "models": args.models,
            "api_key": args.api_key,
            "max_num_seqs": args.max_num_seqs,
            "max_num_batched_tokens": args.max_num_batched_tokens,
            "num_parallel": args.num_parallel,
            "max_queue": args.max_queue,
            "fault": args.fault,
            "priority_scheduling": None
            if args.scheduling_policy is None
            else args.scheduling_policy == "priority",
        }.items()
        if v is not None
    }
    return serve(args.profile, args.port, args.host, **options)


if __name__ == "__main__":
    sys.exit(main())
