"""The result cache on Kafka: a compacted topic keyed by the cache key, shared by the group.

Each worker writes the entries it makes (`publish`) and reads every entry of the topic into
its bounded local store (`ResultCache.load`): from the beginning at start-up, before it takes
any request, so a restarted worker answers what was evaluated before; then as they come, so
one worker's evaluation serves the others. Compaction keeps one entry per key, so the topic
grows with the distinct requests, not with the traffic. The topic is created (compacted) when
it does not exist; the cache is best effort: an entry that fails to publish costs a later
engine call, never a result.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from consumer.result_cache import CachedReply, ResultCache

log = logging.getLogger(__name__)

_POLL_S = 0.5


class CacheTopic:
    """Publishes and reads the cache topic for one worker.

    Args:
        config: librdkafka options shared by the worker's clients.
        topic: the compacted cache topic.
        partitions: its partition count when this worker creates it.
        on_fatal: told the cause when the reader thread dies (from that thread).
    """

    def __init__(
        self,
        config: dict[str, Any],
        topic: str,
        partitions: int = 8,
        on_fatal: Callable[[str], None] = lambda cause: None,
    ) -> None:
        self._config, self._topic, self._partitions = config, topic, partitions
        self._on_fatal = on_fatal
        self._producer = Producer({**config, "linger.ms": 50, "enable.idempotence": True})
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None
        self.loaded = 0

    def publish(self, key: str, reply: CachedReply) -> None:
        """Queues one entry (the event loop's thread); delivery is best effort."""
        try:
            self._producer.produce(self._topic, key=key.encode(), value=reply.to_json())
            self._producer.poll(0)
        except (KafkaException, BufferError) as exc:
            log.warning("result cache: entry not published (%s)", exc)

    def start(self, cache: ResultCache, timeout_s: float) -> None:
        """Creates the topic if needed, reads it to its end into ``cache``, then keeps reading."""
        self._ensure_topic()
        consumer = Consumer(
            {**self._config, "group.id": "evalstream-cache-reader", "enable.auto.commit": False}
        )
        metadata = consumer.list_topics(self._topic, timeout=30).topics[self._topic]
        parts = [TopicPartition(self._topic, p, OFFSET_BEGINNING) for p in metadata.partitions]
        consumer.assign(parts)
        caught_up = threading.Event()
        self._reader = threading.Thread(
            target=self._read, args=(consumer, cache, parts, caught_up), name="cache-reader"
        )
        self._reader.start()
        if not caught_up.wait(timeout_s):
            log.warning("result cache: not read to its end in %.0f s; going on", timeout_s)
        log.info("result cache: %d entries loaded from %s", self.loaded, self._topic)

    def close(self) -> None:
        """Stops reading and flushes what is queued."""
        self._stop.set()
        if self._reader is not None:
            self._reader.join(10)
        self._producer.flush(10)

    def _read(
        self,
        consumer: Consumer,
        cache: ResultCache,
        parts: list[TopicPartition],
        caught_up: threading.Event,
    ) -> None:
        ends: dict[int, int] | None = None
        positions = {p.partition: 0 for p in parts}
        try:
            while not self._stop.is_set():
                if ends is None:
                    # A topic just created has no leader for a moment: asked again next poll.
                    ends = _ends(consumer, parts)
                elif all(positions[p] >= ends[p] for p in ends):
                    caught_up.set()
                message = consumer.poll(_POLL_S)
                if message is None or message.error() is not None:
                    continue
                positions[message.partition() or 0] = (message.offset() or 0) + 1
                self._load(cache, message.key(), message.value())
        except Exception as exc:
            self._on_fatal(f"its reader thread died: {exc!r}")
        finally:
            caught_up.set()
            consumer.close()

    def _load(self, cache: ResultCache, key: bytes | None, value: bytes | None) -> None:
        if not key or not value:
            return  # a tombstone or a stray message: nothing to keep
        try:
            cache.load(key.decode(), CachedReply.from_json(value))
            self.loaded += 1
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("result cache: entry %r unreadable (%s)", key[:80], exc)

    def _ensure_topic(self) -> None:
        admin = AdminClient(self._config)
        if self._topic in admin.list_topics(timeout=30).topics:
            return
        topic = NewTopic(self._topic, self._partitions, -1, config={"cleanup.policy": "compact"})
        # operation_timeout: the call returns once the topic exists on the controller.
        future = admin.create_topics([topic], operation_timeout=30)[self._topic]
        try:
            future.result(30)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):  # another worker made it meanwhile
                raise


def _ends(consumer: Consumer, parts: list[TopicPartition]) -> dict[int, int] | None:
    """Each partition's end offset at start-up; None while a partition has no leader."""
    try:
        return {p.partition: consumer.get_watermark_offsets(p, timeout=5)[1] for p in parts}
    except KafkaException as exc:
        log.info("result cache: end offsets not known yet (%s)", exc)
        return None
