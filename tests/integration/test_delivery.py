"""Delivery guarantees under crashes, engine outages and rebalances.

Real broker, real worker processes, the engine simulator as the engine.
"""

from __future__ import annotations

import collections
import json
import signal
import time
from collections.abc import Callable

import pytest

from tests.integration.pipeline import (
    Pipeline,
    TopicWatcher,
    committed,
    end_offsets,
    free_port,
    produce,
    read_topic,
    request_json,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARTITIONS = 4
# Hand-over tests need work left when workers join and leave: a fixed window keeps the pace
# of the run independent of how fast the adaptive window finds the simulator's slots.
PACED = ("--window-policy", "fixed", "--window", "32")
WINDOW = 32


def publish(pipeline: Pipeline, count: int) -> None:
    produce(
        pipeline.bootstrap,
        pipeline.topics.requests,
        ((f"req-{i:06d}".encode(), request_json(i, job=i % 5), None) for i in range(count)),
    )


def assert_all_committed(pipeline: Pipeline) -> None:
    topics = pipeline.topics
    ends = end_offsets(pipeline.bootstrap, topics.requests, PARTITIONS)
    assert wait_until(
        lambda: committed(pipeline.bootstrap, topics.group, topics.requests, PARTITIONS) == ends, 30
    )


@pytest.mark.timeout(420)
def test_kill_9_three_times_loses_nothing(
    engine_factory: Callable[..., str], pipeline_factory: Callable[..., Pipeline]
) -> None:
    total = 5000
    pipeline = pipeline_factory(engine_factory("vllm", "--time-scale", "20"), PARTITIONS)
    publish(pipeline, total)
    watcher = TopicWatcher(pipeline.bootstrap, pipeline.topics.results)
    fixed = ("--window-policy", "fixed", "--window", str(WINDOW))
    # A crash repeats what was in flight plus the results acknowledged since the last commit:
    # at this engine speed (~400 results/s) the default 1 s interval alone would be 400.
    often = {"EVALSTREAM_KAFKA__COMMIT_INTERVAL_S": "0.1"}
    try:
        worker = pipeline.worker(*fixed, env=often)
        for kill_at in (1000, 2200, 3400):
            assert watcher.wait_distinct(kill_at, 120), f"stalled before {kill_at}"
            worker.kill()  # SIGKILL: no drain, no commit
            worker = pipeline.worker(*fixed, env=often)
        assert watcher.wait_distinct(total, 180)
        assert_all_committed(pipeline)
        ids = watcher.ids()
    finally:
        watcher.close()
    assert set(ids) == {f"req-{i:06d}" for i in range(total)}
    duplicates = len(ids) - total
    print(f"\nkill -9 x3 over {total} requests: {duplicates} duplicates")
    # At most the uncommitted window per kill: in flight plus one commit interval of results.
    assert duplicates <= 3 * (WINDOW + 200)


@pytest.mark.timeout(300)
def test_engine_outage_of_20s_pauses_and_resumes_without_loss(
    engine_factory: Callable[..., str], pipeline_factory: Callable[..., Pipeline]
) -> None:
    total = 3000
    port = free_port()
    url = engine_factory("vllm", "--time-scale", "20", "--port", str(port))
    pipeline = pipeline_factory(url, PARTITIONS)
    publish(pipeline, total)
    watcher = TopicWatcher(pipeline.bootstrap, pipeline.topics.results)
    try:
        worker = pipeline.worker(env={"EVALSTREAM_RETRY__CIRCUIT_FAILURES": "3"})
        assert watcher.wait_distinct(800, 120)
        engine = pipeline_engine_process(engine_factory)
        engine.stop()
        assert wait_until(lambda: worker.metric("evalstream_circuit_open") == 1, 30)
        stalled_at = watcher.distinct()
        outage_end = time.monotonic() + 20
        assert not wait_until(lambda: watcher.distinct() > stalled_at + WINDOW * 2, 20)
        assert worker.metric("evalstream_paused_partitions") == PARTITIONS
        time.sleep(max(0.0, outage_end - time.monotonic()))  # the outage itself lasts 20 s
        engine_factory("vllm", "--time-scale", "20", "--port", str(port))
        assert watcher.wait_distinct(total, 180), "consumption did not resume by itself"
        assert worker.metric("evalstream_rebalances_total", kind="lost") == 0
        assert worker.metric("evalstream_rebalances_total", kind="revoked") == 0
        assert worker.metric("evalstream_dead_lettered_total") == 0
        assert_all_committed(pipeline)
    finally:
        watcher.close()
    dead = read_topic(pipeline.bootstrap, pipeline.topics.dlq, lambda m: False, timeout=2)
    assert dead == []


@pytest.mark.timeout(240)
def test_sigterm_in_the_middle_of_a_rebalance_exits_and_commits(
    engine_factory: Callable[..., str], pipeline_factory: Callable[..., Pipeline]
) -> None:
    # A synchronous commit while a rebalance is pending waits for the rebalance, which
    # waits for the consumer thread: workers stopped at that moment never exited.
    total = 300
    pipeline = pipeline_factory(engine_factory("vllm", "--time-scale", "20"), PARTITIONS)
    publish(pipeline, total)
    watcher = TopicWatcher(pipeline.bootstrap, pipeline.topics.results)
    try:
        first = pipeline.worker(*PACED, name="first")
        assert watcher.wait_distinct(total, 120)
        second = pipeline.worker(*PACED, name="second")
        log = pipeline.tmp / "first.log"
        assert wait_until(lambda: "revoked" in log.read_text(), 60, interval=0.02)
        for worker in (first, second):
            worker.signal(signal.SIGTERM)  # both at once, the rebalance still under way
        assert first.stop(timeout=45) == 0, "did not exit within the grace period"
        assert second.stop(timeout=45) == 0
        assert_all_committed(pipeline)
    finally:
        watcher.close()


def pipeline_engine_process(engine_factory: Callable[..., str]):  # type: ignore[no-untyped-def]
    """The last simulator process the factory started (the fixture keeps them)."""
    return engine_factory.started[-1]  # type: ignore[attr-defined]


@pytest.mark.timeout(300)
def test_workers_joining_and_leaving_lose_nothing(
    engine_factory: Callable[..., str], pipeline_factory: Callable[..., Pipeline]
) -> None:
    total = 8000  # enough that the joins and leaves happen while work remains
    pipeline = pipeline_factory(engine_factory("vllm", "--time-scale", "5"), PARTITIONS)
    publish(pipeline, total)
    watcher = TopicWatcher(pipeline.bootstrap, pipeline.topics.results)
    try:
        pipeline.worker(*PACED, name="steady")
        assert watcher.wait_distinct(500, 120)
        second = pipeline.worker(*PACED, name="second")
        assert wait_until(lambda: second.metric("evalstream_assigned_partitions") > 0, 60)
        third = pipeline.worker(*PACED, name="third")
        assert wait_until(lambda: third.metric("evalstream_assigned_partitions") > 0, 60)
        assert watcher.wait_distinct(watcher.distinct() + 300, 120)
        assert watcher.distinct() < total - 2000, "the run ended before the hand-overs"
        assert second.stop() == 0  # SIGTERM: drains, commits, leaves
        assert watcher.wait_distinct(watcher.distinct() + 300, 120)
        assert third.stop() == 0
        assert watcher.wait_distinct(total, 180)
        assert_all_committed(pipeline)
        values = list(watcher.values)
    finally:
        watcher.close()
    results = [json.loads(v) for v in values]
    ids = [r["id"] for r in results]
    assert set(ids) == {f"req-{i:06d}" for i in range(total)}
    by_source = collections.Counter(
        (r["source"]["partition"], r["source"]["offset"]) for r in results
    )
    duplicated = {
        k: sorted(
            r["worker_id"]
            for r in results
            if (r["source"]["partition"], r["source"]["offset"]) == k
        )
        for k, n in by_source.items()
        if n > 1
    }
    workers = collections.Counter(r["worker_id"] for r in results)
    print(
        f"\njoin/leave over {total} requests: per worker {dict(workers)}, "
        f"duplicates {len(duplicated)}"
    )
    # Graceful hand-over drains and commits before a partition moves: nothing is done twice.
    assert duplicated == {}
