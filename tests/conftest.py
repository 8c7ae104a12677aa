"""Shared fixtures: one real Kafka broker per session, a fresh topic and group per test.

The broker is, in order of preference: the one ``KAFKA_BOOTSTRAP`` names; a testcontainers Kafka
container where a Docker engine answers; a ``LocalKafka`` (Kafka's own jars in a local JVM).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# NewTopic's documented home; the package imports it from cimpl without re-exporting it.
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from evalstream_local.broker.kafka import LocalKafka

# testcontainers' Kafka module drives Confluent's images; 8.1 carries Apache Kafka 4.1.
KAFKA_IMAGE = "confluentinc/cp-kafka:8.1.0"
ADMIN_TIMEOUT_S = 30.0


def _docker_answers() -> bool:
    """Whether a Docker engine answers a ping within two seconds."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    # The SDK's unix transport leaks its socket when the connect fails; skip a missing socket.
    if host.startswith("unix://") and not Path(host.removeprefix("unix://")).exists():
        return False
    try:
        import docker

        client = docker.from_env(timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # no SDK, no engine, no permission: all mean "no Docker"
        return False


@pytest.fixture(scope="session")
def session_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka | None]:
    """The session's ``LocalKafka``, or None when the session uses a broker it did not start."""
    if os.environ.get("KAFKA_BOOTSTRAP") or _docker_answers():
        yield None
    else:
        # A kept directory (pytest prunes old ones), so tests may stop the broker and start
        # another on the same data.
        kafka = LocalKafka(tmp_path_factory.mktemp("kafka"))
        kafka.start()
        try:
            yield kafka
        finally:
            kafka.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(session_broker: LocalKafka | None) -> Iterator[str]:
    """The ``bootstrap.servers`` of the session's broker."""
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP")
    if session_broker is not None:
        yield session_broker.bootstrap
    elif bootstrap:
        yield bootstrap
    else:
        from testcontainers.community.kafka import KafkaContainer

        with KafkaContainer(KAFKA_IMAGE).with_kraft() as container:
            yield container.get_bootstrap_server()


@pytest.fixture
def local_kafka(session_broker: LocalKafka | None, tmp_path: Path) -> Iterator[LocalKafka]:
    """A ``LocalKafka`` a test may pause, kill and restart; running again after the test.

    It is the session's broker when the session runs one, so no second JVM starts; otherwise
    a broker of the test's own.
    """
    if session_broker is None:
        with LocalKafka(tmp_path / "kafka") as kafka:
            yield kafka
        return
    try:
        yield session_broker
    finally:
        if session_broker.running:
            session_broker.resume()
        session_broker.start()


@pytest.fixture(scope="session")
def kafka_admin(kafka_bootstrap: str) -> AdminClient:
    """An admin client of the session's broker."""
    return AdminClient({"bootstrap.servers": kafka_bootstrap})


@pytest.fixture
def topic_factory(kafka_admin: AdminClient) -> Iterator[Callable[..., str]]:
    """Creates uniquely named topics, ``(partitions=1, *, prefix="t") -> name``.

    The topics are deleted after the test, as far as the broker still allows.
    """
    created: list[str] = []

    def create(partitions: int = 1, *, prefix: str = "t") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        topic = NewTopic(name, num_partitions=partitions, replication_factor=1)
        futures = kafka_admin.create_topics([topic], request_timeout=ADMIN_TIMEOUT_S)
        futures[name].result(timeout=ADMIN_TIMEOUT_S)
        created.append(name)
        return name

    yield create
    if created:
        # Best effort: a failed test may have left the broker unreachable.
        with contextlib.suppress(Exception):
            futures = kafka_admin.delete_topics(created, request_timeout=ADMIN_TIMEOUT_S)
            for future in futures.values():
                future.result(timeout=ADMIN_TIMEOUT_S)


@pytest.fixture
def group_factory() -> Callable[..., str]:
    """Returns unique consumer group ids, ``(*, prefix="g") -> id``."""

    def create(*, prefix: str = "g") -> str:
        return f"{prefix}-{uuid.uuid4().hex[:12]}"

    return create
