"""Fixtures for end-to-end tests: the engine simulator and worker pipelines."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from evalstream_local.processes import ManagedProcess
from tests.integration.pipeline import SIM_MODEL, Pipeline, Topics


@pytest.fixture
def engine_factory(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Starts simulators, ``(profile="instant", *flags) -> url``; all stopped afterwards."""
    started: list[ManagedProcess] = []

    def start(profile: str = "instant", *flags: str) -> str:
        process = ManagedProcess.python(
            "evalstream_local",
            "engine",
            "--profile",
            profile,
            "--port",
            "0",
            "--model",
            SIM_MODEL,
            *flags,
            log_path=tmp_path / f"engine{len(started)}.log",
        )
        started.append(process)
        return process.start("url", timeout=60)

    start.started = started  # type: ignore[attr-defined]  # tests may stop one
    yield start
    for process in started:
        process.stop()


@pytest.fixture
def pipeline_factory(
    kafka_bootstrap: str,
    topic_factory: Callable[..., str],
    group_factory: Callable[..., str],
    tmp_path: Path,
) -> Iterator[Callable[..., Pipeline]]:
    """Fresh topics and group wired to an engine URL, ``(engine_url, partitions=4)``."""
    pipelines: list[Pipeline] = []

    def create(engine_url: str, partitions: int = 4) -> Pipeline:
        topics = Topics(
            requests=topic_factory(partitions, prefix="requests"),
            results=topic_factory(partitions, prefix="results"),
            dlq=topic_factory(1, prefix="dlq"),
            group=group_factory(),
        )
        pipeline = Pipeline(kafka_bootstrap, topics, engine_url, tmp_path)
        pipelines.append(pipeline)
        return pipeline

    yield create
    for pipeline in pipelines:
        pipeline.stop()


@pytest.fixture
def topics(topic_factory: Callable[..., str], group_factory: Callable[..., str]) -> Topics:
    """Fresh topics (two partitions each, one for dead letters) and group for one worker."""
    return Topics(
        requests=topic_factory(2, prefix="requests"),
        results=topic_factory(2, prefix="results"),
        dlq=topic_factory(1, prefix="dlq"),
        group=group_factory(),
    )
