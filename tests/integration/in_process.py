"""A `Worker` built and driven inside the test's event loop, with the process's own wiring.

The same parts `consumer.__main__.serve` builds (settings, backend, router, Kafka clients),
against the session's real broker and a real engine simulator: no fakes of Kafka.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from prometheus_client import CollectorRegistry

from consumer.__main__ import build_backend, http_client, wait_for_engine
from consumer.kafka_clients import open_clients
from consumer.metrics import Metrics
from consumer.prompts import PromptTemplate
from consumer.router import ModelRouter
from consumer.settings import Settings, load_settings
from consumer.worker import Worker
from tests.integration.pipeline import SIM_MODEL, Topics


def worker_settings(
    bootstrap: str,
    topics: Topics,
    engine_url: str,
    sections: dict[str, Any] | None = None,
    **kafka: Any,
) -> Settings:
    """Settings of one in-process worker of ``topics``' group (metrics port off);
    ``sections`` adds whole sections (``{"window": {...}}``)."""
    overrides: dict[str, Any] = dict(sections or {})
    return load_settings(
        None,
        **overrides,
        kafka={
            "bootstrap_servers": bootstrap,
            "group_id": topics.group,
            "requests_topic": topics.requests,
            "results_topic": topics.results,
            "dlq_topic": topics.dlq,
            "commit_interval_s": 0.2,
            **kafka,
        },
        engine={"backend": "openai", "url": engine_url, "model": SIM_MODEL},
        metrics={"enabled": False},
        worker_id="in-process",
        shutdown_grace_s=10.0,
    )


@asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[tuple[Worker, asyncio.Task[None]]]:
    """Builds a worker as ``serve`` does and runs it; stops it (SIGTERM's path) on exit."""
    metrics = Metrics(CollectorRegistry(), settings.worker_id, "")
    template = PromptTemplate()
    async with http_client(settings) as client:
        backend, batches = build_backend(settings, client)
        router = ModelRouter(backend.name, settings.engine.model, template.version, [])
        clients = open_clients(settings, metrics, asyncio.get_running_loop())
        worker = Worker(settings, backend, router, template, metrics, clients, batches=batches)
        await wait_for_engine(backend, router.models)
        run = asyncio.create_task(worker.run())
        try:
            yield worker, run
        finally:
            worker.request_stop()
            await asyncio.wait_for(run, timeout=60)
