"""Whether a topic can take messages, answered in seconds instead of a delivery timeout."""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

CHECK_S = 5.0  # the broker's metadata answer takes milliseconds; beyond this it is away


def topic_problem(bootstrap: str, topic: str, options: dict[str, Any]) -> str | None:
    """Why publishing to ``topic`` cannot work; None when it can.

    Also None when the broker does not answer within `CHECK_S`: then the delivery timeout,
    which retries while the broker comes back, has the last word.
    """
    probe = Producer({**options, "bootstrap.servers": bootstrap})
    try:
        metadata = probe.list_topics(topic, timeout=CHECK_S)
    except KafkaException:
        return None
    found = metadata.topics.get(topic)
    if found is None or found.error is None:
        return None
    if found.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
        return (
            f"topic {topic} does not exist on {bootstrap}; create it first: "
            f"evalstream-producer topics create {topic} --bootstrap-servers {bootstrap} "
            "--partitions 8 (evalstream-local kafka creates the default topics when it starts)"
        )
    return f"topic {topic}: {found.error.str()}"
