"""Whether Kafka answers and has the topics a command needs, in seconds, in one line.

`topic_problem` serves ``publish``, whose delivery timeout has the last word on a broker that does
not answer. `cluster_topics` and `require_topic` serve the commands that read (``collect``,
``status``, ``topics``): they fail at once with one line naming the broker or the topic, before
anything is written, instead of waiting out a consumer's silence.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Set
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from producer.errors import BrokerError

CHECK_S = 5.0  # the broker's metadata answer takes milliseconds; beyond this it is away
# librdkafka's summary error; the connection error before it names the cause.
_SUMMARY_CODES = {KafkaError._ALL_BROKERS_DOWN}


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


def cluster_topics(
    bootstrap: str, options: Mapping[str, Any], timeout: float = CHECK_S
) -> frozenset[str]:
    """The names of the cluster's topics.

    The probe asks for every topic's metadata, so it never auto-creates a misspelled one. Its
    own log is off (``log_level`` 0): a broker that is away makes librdkafka log every attempt,
    and the one line this raises says all of it; the reason comes from ``error_cb``.

    Raises:
        BrokerError: No broker answered within ``timeout`` seconds.
    """
    errors: list[KafkaError] = []
    config: dict[str, Any] = {k: v for k, v in options.items() if k != "logger"}
    config |= {"bootstrap.servers": bootstrap, "log_level": 0, "error_cb": errors.append}
    probe = AdminClient(config)
    try:
        metadata = probe.list_topics(timeout=timeout)
    except KafkaException as exc:
        probe.poll(0)  # serves error_cb with the connection errors of the attempts
        causes = [e for e in errors if e.code() not in _SUMMARY_CODES] or errors
        reason = _reason(causes[-1].str()) if causes else exc.args[0].str()
        raise BrokerError(
            f"cannot reach Kafka at {bootstrap} within {timeout:g} s ({reason})"
        ) from exc
    return frozenset(metadata.topics)


def _reason(text: str) -> str:
    """librdkafka's connection error without the broker prefix and the state suffix."""
    _, sep, rest = text.partition("/bootstrap: ")
    reason = rest if sep else text
    return reason.split(" (after ", 1)[0]


def require_topic(topic: str, bootstrap: str, known: Set[str], *, option: str = "--topic") -> None:
    """Checks that ``topic`` is among the ``known`` topics.

    Raises:
        BrokerError: It is not; the message names the closest existing topic, if any.
    """
    if topic in known:
        return
    close = difflib.get_close_matches(topic, sorted(known), n=1)
    hint = f"; did you mean {option} {close[0]}?" if close else ""
    raise BrokerError(f"topic {topic} does not exist on {bootstrap}{hint}")
