"""Fixtures of the fault suite: the integration suite's factories, and fault injection."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from confluent_kafka.admin import AdminClient

from tests.faults.outcomes import PARTITIONS, stamp_append_time
from tests.integration.conftest import engine_factory, pipeline_factory
from tests.integration.pipeline import Pipeline

__all__ = ["engine_factory", "fault_pipeline", "inject_fault", "pipeline_factory"]


@pytest.fixture
def fault_pipeline(
    pipeline_factory: Callable[..., Pipeline], kafka_admin: AdminClient
) -> Callable[..., Pipeline]:
    """Like ``pipeline_factory``, with outcome topics stamped with the broker's append time."""

    def create(engine_url: str, partitions: int = PARTITIONS) -> Pipeline:
        pipeline = pipeline_factory(engine_url, partitions)
        stamp_append_time(kafka_admin, pipeline.topics.results, pipeline.topics.dlq)
        return pipeline

    return create


@pytest.fixture
def inject_fault() -> Callable[..., dict[str, Any]]:
    """Sets the simulator's fault, ``(engine_url, mode, duration_s=None, rate=1.0) -> state``."""

    def inject(
        engine_url: str, mode: str, duration_s: float | None = None, rate: float = 1.0
    ) -> dict[str, Any]:
        response = httpx.post(
            f"{engine_url}/_simulator/faults",
            json={"mode": mode, "duration_s": duration_s, "rate": rate},
            timeout=10,
        )
        response.raise_for_status()
        state: dict[str, Any] = response.json()
        return state

    return inject
