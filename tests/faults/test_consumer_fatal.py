"""A fatal consumer error stops the worker: a clear log line, a drain, a non-zero exit.

The fatal error librdkafka reports against this broker is a fenced static member: a worker
with ``group.instance.id`` is replaced by another consumer of the same instance id, and its
next heartbeat answers FENCED_INSTANCE_ID, which librdkafka raises as fatal. (A deleted
requests topic or a denied ACL is reported as an ordinary, retriable consumer error.)
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer

from tests.faults.outcomes import publish
from tests.integration.pipeline import Pipeline, TopicWatcher, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.faults]

INSTANCE = "worker-static-0"
# Short sessions: the fenced worker's next heartbeat comes within a few seconds.
STATIC = {
    "EVALSTREAM_KAFKA__CLIENT": json.dumps(
        {"group.instance.id": INSTANCE, "session.timeout.ms": "6000"}
    )
}


@pytest.mark.timeout(180)
def test_a_fenced_static_member_stops_the_worker_with_exit_code_1(
    engine_factory: Callable[..., str], pipeline_factory: Callable[..., Pipeline]
) -> None:
    pipeline = pipeline_factory(engine_factory(), 2)
    topics = pipeline.topics
    publish(pipeline, 20)
    watcher = TopicWatcher(pipeline.bootstrap, topics.results)
    try:
        worker = pipeline.worker(env=STATIC)
        assert watcher.wait_distinct(20, 60), "the worker did not serve its requests"
        usurper = Consumer(
            {
                "bootstrap.servers": pipeline.bootstrap,
                "group.id": topics.group,
                "group.instance.id": INSTANCE,
                "session.timeout.ms": 6000,
                # The group's protocol: another one would be refused, not fence anybody.
                "partition.assignment.strategy": "cooperative-sticky",
            }
        )

        def fenced() -> bool:
            usurper.poll(0.2)  # joins under the worker's instance id, which fences the worker
            return not worker.alive()

        try:
            usurper.subscribe([topics.requests])
            assert wait_until(fenced, 60, interval=0.05), "the fenced worker kept running"
        finally:
            usurper.close()
        exit_code = worker.wait(5)
    finally:
        watcher.close()
    assert exit_code == 1
    assert worker.log_path is not None
    log = worker.log_path.read_text()
    assert "stopping: the request source failed: fatal consumer error" in log, log[-3000:]
    assert "stopped" in log  # the SIGTERM path ran: drain, commit where possible, close
