"""`RequestPublisher`: validates evaluation requests and produces them to the requests topic.

Every message is produced by an idempotent producer (``acks=all``), keyed by the request id, and
its delivery is confirmed: the delivery callback counts acknowledgements and failures, and
`RequestPublisher.flush` (or leaving the ``with`` block) waits for all of them.

Example:
    >>> with RequestPublisher("localhost:9092", "evalstream.requests") as publisher:
    ...     publisher.publish({"id": "req-1", "candidate": {...}, "job": {...}})
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from types import TracebackType
from typing import Any, Protocol

from confluent_kafka import KafkaError, Message, Producer

from consumer.schemas import AnyRequest, BatchRequestLine, EvaluationRequest
from producer.errors import DeliveryError, InvalidRequestError
from producer.validation import ValidLine, request_id, validate_object

# Idempotence implies acks=all and ordered retries; linger batches bursts into fewer requests;
# lz4 shrinks the repetitive resume text cheaply on both ends.
PRODUCER_DEFAULTS: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 5,
    "compression.type": "lz4",
}
# How long one wait for queue space lasts when librdkafka's local queue is full.
_QUEUE_FULL_WAIT_S = 0.1

HeaderValue = str | bytes
Headers = Mapping[str, HeaderValue] | Sequence[tuple[str, HeaderValue]]


class KeyMode(StrEnum):
    """What a message is keyed by."""

    ID = "id"  # the request id: per-request ordering, and duplicates land on one partition
    NONE = "none"  # no key: librdkafka spreads messages over partitions


class ProducerClient(Protocol):
    """The part of `confluent_kafka.Producer` this module uses."""

    def produce(
        self,
        topic: str,
        value: str | bytes | None = None,
        key: str | bytes | None = None,
        partition: int = -1,
        callback: Any = None,
        on_delivery: Any = None,
        timestamp: int = 0,
        headers: Any = None,
    ) -> None:
        """Queues one message."""
        ...

    def poll(self, timeout: float = -1) -> int:
        """Serves delivery callbacks."""
        ...

    def flush(self, timeout: float = -1) -> int:
        """Waits for outstanding deliveries; returns how many are left."""
        ...


def encode_headers(headers: Headers | None) -> list[tuple[str, bytes]] | None:
    """Turns headers into the list of ``(name, bytes)`` pairs librdkafka takes."""
    if not headers:
        return None
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return [(name, value.encode() if isinstance(value, str) else value) for name, value in pairs]


class RequestPublisher:
    """Publishes validated requests to a Kafka topic with confirmed delivery.

    Args:
        bootstrap_servers: Kafka bootstrap servers, ``host:port[,host:port]``.
        topic: The requests topic.
        key: Key messages by request id (default) or leave them unkeyed.
        client: A ready producer (tests); built from the other arguments when None.
        **kafka_config: librdkafka options under their own names, overriding
            `PRODUCER_DEFAULTS`: ``**{"linger.ms": 20, "security.protocol": "SSL"}``.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        *,
        key: KeyMode | str = KeyMode.ID,
        client: ProducerClient | None = None,
        **kafka_config: Any,
    ) -> None:
        self.topic = topic
        self.key_mode = KeyMode(key)
        config = {**PRODUCER_DEFAULTS, **kafka_config}
        config["bootstrap.servers"] = bootstrap_servers
        self._producer: ProducerClient = client if client is not None else Producer(config)
        self.produced = 0
        self.delivered = 0
        self.failed = 0
        self.first_error: str | None = None

    @property
    def pending(self) -> int:
        """Messages produced but neither acknowledged nor failed yet."""
        return self.produced - self.delivered - self.failed

    def publish(
        self,
        request: EvaluationRequest | BatchRequestLine | Mapping[str, Any],
        *,
        headers: Headers | None = None,
    ) -> None:
        """Validates a request and produces it; delivery is confirmed asynchronously.

        Args:
            request: A request model, or a dict in either request shape.
            headers: Message headers.

        Raises:
            InvalidRequestError: The request does not match the wire contract (nothing is sent).
        """
        if isinstance(request, Mapping):
            parsed = validate_object(dict(request))
        elif isinstance(request, EvaluationRequest | BatchRequestLine):
            parsed = request
        else:
            raise InvalidRequestError(f"expected a request or a dict, got {type(request).__name__}")
        value = parsed.model_dump_json(exclude_unset=True).encode()
        self._produce(parsed, value, headers)

    def publish_line(self, line: ValidLine, *, headers: Headers | None = None) -> None:
        """Produces an already validated input line, its bytes unchanged."""
        self._produce(line.request, line.value, headers)

    def _produce(self, request: AnyRequest, value: bytes, headers: Headers | None) -> None:
        """Produces one message, waiting for queue space while librdkafka's queue is full."""
        key = request_id(request).encode() if self.key_mode is KeyMode.ID else None
        encoded = encode_headers(headers)
        while True:
            try:
                self._producer.produce(
                    self.topic, value=value, key=key, headers=encoded, on_delivery=self._on_delivery
                )
                break
            except BufferError:
                self._producer.poll(_QUEUE_FULL_WAIT_S)
        self.produced += 1
        self._producer.poll(0)

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        """Counts one acknowledgement or failure (runs inside `poll`/`flush`)."""
        if error is None:
            self.delivered += 1
            return
        self.failed += 1
        if self.first_error is None:
            self.first_error = error.str()

    def poll(self, timeout: float = 0.0) -> int:
        """Serves delivery callbacks for up to ``timeout`` seconds; returns how many ran."""
        return self._producer.poll(timeout)

    def flush(self, timeout: float = 30.0) -> int:
        """Waits until every produced message is acknowledged or failed.

        Args:
            timeout: Seconds to wait at most.

        Returns:
            How many messages are still unconfirmed (0 when all are settled).
        """
        return self._producer.flush(timeout)

    def raise_for_failures(self) -> None:
        """Raises `DeliveryError` if any message failed or is still unconfirmed."""
        if self.failed or self.pending:
            raise DeliveryError(self.topic, self.failed + self.pending, self.first_error)

    def close(self, timeout: float = 30.0) -> None:
        """Flushes, then raises `DeliveryError` if anything was not delivered."""
        self.flush(timeout)
        self.raise_for_failures()

    def __enter__(self) -> RequestPublisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.flush()
