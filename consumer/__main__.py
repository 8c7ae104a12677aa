"""``evalstream-consumer``: the worker service (one per GPU, one consumer group).

Every flag is also an ``EVALSTREAM_*`` environment variable (``--kafka-commit-interval-s`` is
``EVALSTREAM_KAFKA__COMMIT_INTERVAL_S``) and a config-file key (``[kafka] commit_interval_s``);
flags win over the environment, which wins over the file (``--config`` or
``EVALSTREAM_CONFIG_FILE``), which wins over the defaults. Secrets (``kafka.sasl_password``,
``engine.api_key``) have no flag: set them in the environment or the file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import httpx
from httpx_aiohttp import HttpxAiohttpClient
from prometheus_client import CollectorRegistry, disable_created_metrics
from pydantic import ValidationError

from consumer.backends.base import Backend
from consumer.backends.registry import BACKENDS
from consumer.backoff import ENGINE_PROBE
from consumer.errors import ConfigError
from consumer.flags import add_setting_flags, overrides, setting_flags
from consumer.gpu_metrics import GpuCollector
from consumer.http_server import HealthServer
from consumer.kafka_clients import open_clients
from consumer.logs import configure_logging, plain_text
from consumer.metrics import Metrics
from consumer.prompts import PromptTemplate
from consumer.router import ModelRouter, Variant
from consumer.settings import CONFIG_FILE_ENV, Settings, load_settings
from consumer.worker import Worker

log = logging.getLogger("consumer")

# One flag per setting, generated from the settings model (`consumer.flags`).
FLAGS = tuple(setting_flags(Settings))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="evalstream-consumer",
        description=plain_text(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--config",
        type=Path,
        help=f"TOML, YAML or JSON configuration file (default: ${CONFIG_FILE_ENV}, if set)",
    )
    p.add_argument(
        "--check-config", action="store_true", help="print the effective configuration and exit"
    )
    add_setting_flags(p, FLAGS)
    return p


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Flags become init overrides, which win over environment and file."""
    settings = load_settings(args.config, **overrides(args, FLAGS))
    if settings.gpu is not None and "{gpu}" in settings.engine.url:
        engine = settings.engine.model_copy(
            update={"url": settings.engine.url.replace("{gpu}", settings.gpu)}
        )
        settings = settings.model_copy(update={"engine": engine})
    return settings


def build_backend(settings: Settings, client: httpx.AsyncClient) -> tuple[Backend, bool]:
    """The backend for the configured engine, and whether it batches in one call."""
    engine = settings.engine
    section = engine.section()
    backend = BACKENDS[engine.backend].create(client, engine.options(), section)
    return backend, section.one_call_per_batch


def http_client(settings: Settings) -> httpx.AsyncClient:
    """One pooled client for every engine call; the pool fits the largest window.

    The httpx API over aiohttp's connection pool (httpx-aiohttp, as the OpenAI SDK offers):
    at 128 concurrent requests httpx's own pool spent ~6.4 ms of CPU per call on this
    project's CPU benchmark machine, aiohttp's 0.66 ms, and the worker is CPU-bound first.
    """
    headers = {}
    if settings.engine.api_key is not None:
        headers["Authorization"] = f"Bearer {settings.engine.api_key.get_secret_value()}"
    size = settings.window.max + 16
    return HttpxAiohttpClient(
        base_url=settings.engine.url,
        headers=headers,
        timeout=httpx.Timeout(settings.engine.timeout_s, connect=10.0),
        limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
    )


async def wait_for_engine(backend: Backend, models: list[str]) -> None:
    """Waits for the engine to answer, then checks that it serves every routed model."""
    await ENGINE_PROBE.until(
        backend.health, lambda _: log.info("waiting for the engine to answer its health check")
    )
    for model in models:
        await backend.check_model(model)


async def serve(settings: Settings) -> int:
    """Runs the worker until SIGTERM/SIGINT; returns the exit code."""
    registry = CollectorRegistry()
    metrics = Metrics(registry, settings.worker_id, settings.gpu or "")
    registry.register(GpuCollector(settings.worker_id, settings.gpu))
    template = (
        PromptTemplate.load(settings.engine.prompt_template)
        if settings.engine.prompt_template
        else PromptTemplate()
    )
    async with http_client(settings) as client:
        backend, batches = build_backend(settings, client)
        router = ModelRouter(
            backend.name,
            settings.engine.model,
            template.version,
            [Variant(v.name, v.model, v.weight) for v in settings.engine.variants],
        )
        metrics.build_info(_version(), backend.name, settings.engine.model)
        loop = asyncio.get_running_loop()
        # Opened here, off the loop (exactly-once initialises its transactions: a round trip).
        clients = await asyncio.to_thread(open_clients, settings, metrics, loop)
        worker = Worker(settings, backend, router, template, metrics, clients, batches=batches)
        server = HealthServer(registry, worker.live, worker.ready)
        if settings.metrics.enabled:
            # Up before the engine: probes and /metrics answer while a model loads (minutes).
            await server.start(settings.metrics.host, settings.metrics.port)
            log.info("metrics on http://%s:%d/metrics", settings.metrics.host, server.port)
        try:
            await wait_for_engine(backend, router.models)
            await worker.run()
            if worker.failed:
                return 1
        finally:
            await server.stop()
    return 0


def _version() -> str:
    try:
        return version("evalstream")
    except PackageNotFoundError:
        return "0+unknown"


def main(argv: list[str] | None = None) -> int:
    """Console entry point."""
    args = _parser().parse_args(argv)
    try:
        settings = settings_from_args(args)
        if args.check_config:
            print(json.dumps(settings.model_dump(mode="json"), indent=2))
            return 0
        configure_logging(settings.log_format, settings.log_level)
        disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series
        return asyncio.run(serve(settings))
    except ValidationError as exc:
        print(f"evalstream-consumer: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"evalstream-consumer: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
