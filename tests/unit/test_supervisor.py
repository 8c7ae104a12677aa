"""Supervisor: a task that raises or ends, or a client's fatal error, stops the worker once."""

from __future__ import annotations

import asyncio

import pytest
from confluent_kafka import KafkaError

from consumer.supervisor import Supervisor

pytestmark = pytest.mark.timeout(10)


def supervised() -> tuple[Supervisor, list[str]]:
    supervisor = Supervisor(asyncio.get_running_loop())
    stops: list[str] = []
    supervisor.on_failure(lambda: stops.append("stop"))
    return supervisor, stops


async def test_a_task_that_raises_names_its_part_and_cause_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    supervisor, stops = supervised()

    async def broken() -> None:
        raise RuntimeError("boom")

    task = supervisor.spawn("the window controller", broken())
    await asyncio.wait([task])
    supervisor.fail("the committer", "a second failure")  # the first cause is kept

    assert supervisor.failed
    assert supervisor.cause == "the window controller failed: RuntimeError: boom"
    assert stops == ["stop"]
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("stopping:")]
    assert lines == ["stopping: the window controller failed: RuntimeError: boom"]


async def test_a_task_that_returns_while_the_worker_runs_is_a_death() -> None:
    supervisor, stops = supervised()

    async def quits() -> None:
        return None

    await asyncio.wait([supervisor.spawn("the engine monitor", quits())])
    assert supervisor.cause == "the engine monitor failed: ended unexpectedly"
    assert stops == ["stop"]


async def test_tasks_cancelled_by_stop_are_no_failure() -> None:
    supervisor, stops = supervised()
    supervisor.spawn("the micro-batcher", asyncio.Event().wait())  # type: ignore[arg-type]

    await supervisor.stop()

    assert not supervisor.failed
    assert stops == []


async def test_a_fatal_client_error_fails_and_a_transient_one_does_not() -> None:
    supervisor, stops = supervised()
    on_error = supervisor.error_cb("the request source")

    on_error(KafkaError(KafkaError._TRANSPORT, "broker went away"))
    await asyncio.sleep(0)  # thread_died hops through call_soon_threadsafe
    assert not supervisor.failed

    on_error(KafkaError(KafkaError._FATAL, "fenced", fatal=True))
    await asyncio.sleep(0)
    assert supervisor.cause == "the request source failed: fatal Kafka error: fenced"
    assert stops == ["stop"]
