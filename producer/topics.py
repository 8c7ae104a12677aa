"""``evalstream-producer topics``: create and describe the topics a deployment needs.

``create`` makes the requests, results and dead-letter topics (or those named) with a partition
count, a replication factor and, where given, ``max.message.bytes`` (README, "Topic sizing"); a
topic that exists already is left as it is and said so. ``describe`` prints each topic's
partitions, replication factor and ``max.message.bytes``.
"""

from __future__ import annotations

import argparse
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConfigResource,
    NewTopic,
)

from consumer.lanes import INTERACTIVE_TOPIC
from consumer.settings import KafkaSettings
from producer.errors import ProducerError
from producer.topic_check import cluster_topics

TIMEOUT_S = 30.0


def default_topics() -> list[str]:
    """The worker's default requests, results and dead-letter topics, and the interactive lane's."""
    kafka = KafkaSettings()
    return [kafka.requests_topic, kafka.results_topic, kafka.dlq_topic, INTERACTIVE_TOPIC]


def run_topics(args: argparse.Namespace, options: dict[str, Any]) -> int:
    """Runs ``topics create`` or ``topics describe``; returns the exit status."""
    cluster_topics(args.bootstrap_servers, options)  # one line and exit 1 if Kafka is away
    admin = AdminClient({**options, "bootstrap.servers": args.bootstrap_servers})
    names: list[str] = args.topics or default_topics()
    if args.action == "create":
        for line in create(
            admin, names, args.partitions, args.replication_factor, args.max_message_bytes
        ):
            print(line)
    for line in describe(admin, names):
        print(line)
    return 0


def create(
    admin: AdminClient, names: list[str], partitions: int, replication: int, max_bytes: int | None
) -> list[str]:
    """Creates each topic; one line per topic saying what happened."""
    config = {"max.message.bytes": str(max_bytes)} if max_bytes else {}
    new = [NewTopic(name, partitions, replication, config=config) for name in names]
    lines = []
    for name, future in admin.create_topics(new, operation_timeout=TIMEOUT_S).items():
        try:
            future.result(TIMEOUT_S)
            lines.append(f"created {name}")
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise ProducerError(f"cannot create topic {name}: {exc.args[0].str()}") from exc
            lines.append(f"exists  {name} (left as it is)")
    return lines


def describe(admin: AdminClient, names: list[str]) -> list[str]:
    """One line per topic: partitions, replication factor and max.message.bytes."""
    metadata = admin.list_topics(timeout=TIMEOUT_S)
    resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in names]
    found = {name for name in names if name in metadata.topics}
    configs = (
        {
            resource.name: future.result(TIMEOUT_S)
            for resource, future in admin.describe_configs(
                [r for r in resources if r.name in found]
            ).items()
        }
        if found
        else {}
    )
    lines = []
    for name in names:
        if name not in found:
            lines.append(f"{name}: does not exist")
            continue
        partitions = metadata.topics[name].partitions
        replicas = min((len(p.replicas) for p in partitions.values()), default=0)
        limit = configs[name]["max.message.bytes"].value
        lines.append(
            f"{name}: {len(partitions)} partitions, replication factor {replicas}, "
            f"max.message.bytes {int(limit):,}"
        )
    return lines
