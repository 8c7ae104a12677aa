"""A part of the worker dies: `/healthz` turns red, one line names it, the process exits 1.

Neither fault can be caused on demand from outside against a healthy broker (an idempotent
producer's broken sequence; a bug that makes a task raise), so the worker takes them from the
test-only hooks of ``test_faults`` (``EVALSTREAM_TEST_FAULTS``): SIGUSR2 makes the results
producer report a fatal error through its ``error_cb`` exactly as librdkafka would, SIGUSR1
makes the status reporter's task raise. Everything after the hook is the real path: the
supervisor, the drain, the commit of what was acknowledged, the exit. A second worker then
finishes the run, and every request has its outcome: nothing was lost.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.faults.outcomes import (
    PARTITIONS,
    WORKER_ARGS,
    Accounting,
    OutcomeWatcher,
    assert_all_committed,
    publish,
)
from tests.integration.pipeline import Pipeline, Worker, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.faults]

TOTAL = 400
# The drain of the failed worker lasts this long (its engine calls hang), so `/healthz` can be
# seen red before the process ends; its exit takes the grace and the commit reserve at most.
FAULTY = {"EVALSTREAM_TEST_FAULTS": "true", "EVALSTREAM_SHUTDOWN_GRACE_S": "4"}

Inject = Callable[..., dict[str, Any]]


def health(worker: Worker) -> tuple[int, str]:
    """The worker's ``/healthz`` status and text; (0, "") once it no longer answers."""
    try:
        response = httpx.get(f"http://127.0.0.1:{worker.metrics_port}/healthz", timeout=2)
    except httpx.HTTPError:
        return 0, ""
    return response.status_code, response.text


@pytest.mark.parametrize(
    ("sig", "line"),
    [
        (signal.SIGUSR2, "stopping: the results producer failed: fatal Kafka error: "),
        (signal.SIGUSR1, "stopping: the status reporter failed: RuntimeError: test fault"),
    ],
    ids=["results-producer-fatal", "task-dies"],
)
@pytest.mark.timeout(300)
def test_a_dead_part_turns_health_red_stops_the_worker_with_1_and_loses_nothing(
    engine_factory: Callable[..., str],
    fault_pipeline: Callable[..., Pipeline],
    inject_fault: Inject,
    sig: signal.Signals,
    line: str,
) -> None:
    engine = engine_factory("vllm", "--time-scale", "20")
    pipeline = fault_pipeline(engine, PARTITIONS)
    publish(pipeline, TOTAL)
    # A fifth of the engine calls never answer: the window fills up with them, so work is in
    # flight when the part dies (it stays there during the drain) and is left for a successor.
    inject_fault(engine, "hang", rate=0.2)
    watcher = OutcomeWatcher(pipeline.bootstrap, pipeline.topics.results, pipeline.topics.dlq)
    try:
        worker = pipeline.worker(*WORKER_ARGS, env=FAULTY, name="faulty")
        assert watcher.wait_distinct(50, 120), "the worker did not start serving"
        assert wait_until(lambda: health(worker)[0] == 200, 30)
        worker.signal(sig)

        seen: list[str] = []

        def red() -> bool:
            status, text = health(worker)
            seen.append(text)
            return status == 503

        assert wait_until(red, 30, interval=0.05), seen[-3:]
        assert line.removeprefix("stopping: ") in seen[-1]  # it names the part and the cause
        assert worker.wait(60) == 1
        assert worker.log_path is not None
        log = worker.log_path.read_text()
        assert log.count("stopping: ") == 1, log[-3000:]  # one line names the part and cause
        assert line in log, log[-3000:]
        assert "stopped" in log  # drained, committed what was acknowledged, closed
        assert watcher.distinct() < TOTAL  # the hung requests are left for the successor

        inject_fault(engine, "none")
        successor = pipeline.worker(*WORKER_ARGS, name="successor")
        assert watcher.wait_distinct(TOTAL, 180), f"{watcher.distinct()} of {TOTAL} finished"
        assert_all_committed(pipeline, PARTITIONS)
        assert successor.stop() == 0
    finally:
        watcher.close()
    accounting = Accounting.of(watcher.outcomes(), TOTAL)  # every request has its outcome
    assert accounting.dead_letters == {}
