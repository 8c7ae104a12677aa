"""Exactly-once mode: results and source offsets committed in one Kafka transaction."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.integration.pipeline import (
    Pipeline,
    TopicWatcher,
    committed,
    end_offsets,
    produce,
    request_json,
    wait_until,
)

PARTITIONS = 4
EXACTLY_ONCE = ("--processing-guarantee", "exactly_once")
# Hand-over tests need work left when workers join and leave: a fixed window keeps the pace of
# the run independent of how fast the adaptive window finds the simulator's slots.
PACED = ("--window-policy", "fixed", "--window", "32")
# A restarted worker keeps its id (a StatefulSet pod, a compose service), so it fences its
# predecessor at once; a short session lets the group notice the killed one sooner.
FAST_SESSION = {"EVALSTREAM_KAFKA__CLIENT": '{"session.timeout.ms": "8000"}'}


def start(
    engine_factory: Callable[..., str],
    pipeline_factory: Callable[..., Pipeline],
    total: int,
    time_scale: int = 20,
) -> tuple[Pipeline, TopicWatcher]:
    engine = engine_factory("vllm", "--time-scale", str(time_scale))
    pipeline = pipeline_factory(engine, PARTITIONS)
    produce(
        pipeline.bootstrap,
        pipeline.topics.requests,
        ((f"req-{i:06d}".encode(), request_json(i, job=i % 5), None) for i in range(total)),
    )
    # librdkafka consumers read committed data only by default: what downstream sees.
    return pipeline, TopicWatcher(pipeline.bootstrap, pipeline.topics.results)


def finish(pipeline: Pipeline, watcher: TopicWatcher, total: int) -> list[str]:
    assert watcher.wait_distinct(total, 180)
    topics = pipeline.topics
    ends = end_offsets(pipeline.bootstrap, topics.requests, PARTITIONS)
    assert wait_until(
        lambda: committed(pipeline.bootstrap, topics.group, topics.requests, PARTITIONS) == ends,
        30,
    )
    return watcher.ids()


@pytest.mark.faults
@pytest.mark.integration
@pytest.mark.timeout(240)
def test_every_result_is_committed_once_with_its_offset(
    engine_factory: Callable[..., str], pipeline_factory: Callable[..., Pipeline]
) -> None:
    total = 1500
    pipeline, watcher = start(engine_factory, pipeline_factory, total)
    try:
        worker = pipeline.worker(*EXACTLY_ONCE, name="w")
        ids = finish(pipeline, watcher, total)
    finally:
        watcher.close()
    assert sorted(ids) == [f"req-{i:06d}" for i in range(total)]  # each exactly once
    assert worker.stop() == 0  # the final transaction commits on SIGTERM


@pytest.mark.faults
@pytest.mark.integration
@pytest.mark.timeout(360)
def test_kill_9_leaves_no_duplicate_for_read_committed_consumers(
    engine_factory: Callable[..., str], pipeline_factory: Callable[..., Pipeline]
) -> None:
    total = 3000
    pipeline, watcher = start(engine_factory, pipeline_factory, total)
    try:
        worker = pipeline.worker(*EXACTLY_ONCE, name="w", env=FAST_SESSION)
        for kill_at in (700, 1600):
            assert watcher.wait_distinct(kill_at, 120), f"stalled before {kill_at}"
            worker.kill()  # SIGKILL inside or between transactions
            worker = pipeline.worker(*EXACTLY_ONCE, name="w", env=FAST_SESSION)
        ids = finish(pipeline, watcher, total)
    finally:
        watcher.close()
    print(f"\nexactly once, kill -9 x2 over {total} requests: {len(ids) - total} duplicates")
    assert sorted(ids) == [f"req-{i:06d}" for i in range(total)]


@pytest.mark.faults
@pytest.mark.integration
@pytest.mark.timeout(360)
def test_workers_joining_and_leaving_commit_each_result_once(
    engine_factory: Callable[..., str], pipeline_factory: Callable[..., Pipeline]
) -> None:
    # Cooperative rebalancing revokes partitions after the new generation began: the
    # transactions committing them must carry that generation, or they are fenced.
    total = 3000
    pipeline, watcher = start(engine_factory, pipeline_factory, total, time_scale=5)
    try:
        first = pipeline.worker(*EXACTLY_ONCE, *PACED, name="first")
        assert watcher.wait_distinct(500, 120)
        second = pipeline.worker(*EXACTLY_ONCE, *PACED, name="second")
        assert wait_until(lambda: second.metric("evalstream_assigned_partitions") > 0, 60)
        assert watcher.wait_distinct(watcher.distinct() + 300, 120)
        assert second.stop() == 0  # its partitions go back to the first worker
        assert watcher.distinct() < total - 300, "the run ended before the hand-overs"
        ids = finish(pipeline, watcher, total)
    finally:
        watcher.close()
    assert sorted(ids) == [f"req-{i:06d}" for i in range(total)]
    assert first.metric("evalstream_rebalances_total", kind="assigned") >= 2
