"""Broker failover as production runs it: three brokers, replication factor 3, ``acks=all``.

The worker drains its requests from a three-node cluster (``min.insync.replicas`` 2). Mid-drain,
the broker that leads a requests partition and a results partition is killed with SIGKILL: its
leaderships move to the two brokers left, which still make an in-sync majority, so every write
the worker's producer sends with ``acks=all`` can still be acknowledged. The worker must ride it
out in the same process and lose nothing.

The cluster is this module's own (module-scoped): the session's single broker stays as it is,
and the tests that use it stay fast.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaException

# NewTopic's documented home; the package imports it from cimpl without re-exporting it.
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from evalstream_local.broker.cluster import NODES, LocalKafkaCluster
from evalstream_local.broker.jars import LocalKafkaError
from tests.faults.outcomes import (
    APPEND_TIME,
    TIME_SCALE,
    WORKER_ARGS,
    Accounting,
    OutcomeWatcher,
    assert_all_committed,
    publish,
    report,
)
from tests.integration.pipeline import Pipeline, Topics, committed, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.slow]

TOTAL = 3000
KILL_AFTER = 1000
PARTITIONS = 4
# More partitions than nodes: Kafka stripes the leaders over the nodes, so every node leads a
# partition of each topic, and one broker leads both a requests and a results partition. That is
# the one to kill: killing two different brokers would leave one, fewer than
# min.insync.replicas, and no cluster of three promises writes through that.
LEADERSHIP_MOVE_S = 60.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafkaCluster]:
    """A three-node cluster of this module's own, stopped (every node) after its tests."""
    with LocalKafkaCluster(tmp_path_factory.mktemp("kafka-cluster")) as started:
        yield started


def replicated_topics(cluster: LocalKafkaCluster) -> Topics:
    """Fresh requests, results and dead-letter topics on all three nodes, and a fresh group."""
    suffix = uuid.uuid4().hex[:12]
    topics = Topics(f"requests-{suffix}", f"results-{suffix}", f"dlq-{suffix}", f"g-{suffix}")
    # Outcome topics stamp the broker's append time, as in the rest of the fault suite.
    new = [
        NewTopic(topics.requests, PARTITIONS, NODES),
        NewTopic(topics.results, PARTITIONS, NODES, config=APPEND_TIME),
        NewTopic(topics.dlq, 1, NODES, config=APPEND_TIME),
    ]
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    for future in admin.create_topics(new, request_timeout=30).values():
        future.result(timeout=30)
    assert wait_until(lambda: cluster.fully_replicated(topics.requests, topics.results), 30)
    return topics


def leader_of_both(cluster: LocalKafkaCluster, topics: Topics) -> int:
    """A broker that leads, per metadata now, a requests partition and a results partition."""
    requests = set(cluster.leaders(topics.requests).values())
    results = set(cluster.leaders(topics.results).values())
    both = sorted((requests & results) - {-1})
    assert both, f"no broker leads both: requests {requests}, results {results}"
    return both[0]


def led_by_others(cluster: LocalKafkaCluster, topics: Topics, dead: int) -> bool:
    """Whether every requests and results partition has a live leader other than ``dead``."""
    try:
        leaders = [
            *cluster.leaders(topics.requests).values(),
            *cluster.leaders(topics.results).values(),
        ]
    except (KafkaException, LocalKafkaError):  # no metadata yet while leadership moves
        return False
    return all(leader not in (dead, -1) for leader in leaders)


@pytest.mark.timeout(600)
def test_leader_killed_mid_drain_loses_nothing_and_the_worker_goes_on(
    cluster: LocalKafkaCluster, engine_factory: Callable[..., str], tmp_path: Path
) -> None:
    topics = replicated_topics(cluster)
    engine = engine_factory("vllm", "--time-scale", TIME_SCALE)
    pipeline = Pipeline(cluster.bootstrap, topics, engine, tmp_path)
    watcher = OutcomeWatcher(cluster.bootstrap, topics.results, topics.dlq)
    try:
        publish(pipeline, TOTAL)  # acks=all (an idempotent producer)
        worker = pipeline.worker(*WORKER_ARGS)
        assert watcher.wait_distinct(KILL_AFTER, 180), f"{watcher.distinct()} before the kill"
        victim = leader_of_both(cluster, topics)
        # Read before the kill: commits only move forward, so this is a floor of any position
        # the group could re-deliver from afterwards.
        floor = committed(cluster.bootstrap, topics.group, topics.requests, PARTITIONS)
        cluster.kill(victim)  # SIGKILL: no controlled shutdown, no leadership handed over
        killed = time.time()
        finished_at_kill = watcher.distinct()
        assert finished_at_kill < TOTAL, "the drain ended before the kill"
        assert wait_until(lambda: led_by_others(cluster, topics, victim), LEADERSHIP_MOVE_S)
        moved_s = time.time() - killed
        assert watcher.wait_distinct(TOTAL, 300), f"{watcher.distinct()} of {TOTAL} finished"
        assert_all_committed(pipeline, PARTITIONS)
        # The process started before the kill, never restarted: it rode the failover out.
        assert worker.alive(), f"worker {worker.pid} exited during the failover"
        lost_partitions = worker.metric("evalstream_rebalances_total", kind="lost")
    finally:
        watcher.close()
        pipeline.stop()
    accounting = Accounting.of(watcher.outcomes(), TOTAL)
    assert accounting.dead_letters == {}
    # The results producer is idempotent with acks=all: a leader change re-sends nothing twice.
    # A request is done again only after its partition was lost (the session expired) and
    # re-delivered from the committed position, so only at or past the floor, once per loss.
    for (partition, offset), copies in accounting.copies_by_source().items():
        allowed = 1 if offset < floor[partition] else 1 + int(lost_partitions)
        assert copies <= allowed, f"[{partition}]@{offset} done {copies} times"
    report(
        "broker_failover_3_nodes",
        TOTAL,
        accounting.duplicates,
        accounting.recovery_s(killed),
        killed_node=victim,
        finished_at_kill=finished_at_kill,
        leadership_moved_s=round(moved_s, 2),
        lost_partitions=int(lost_partitions),
    )
