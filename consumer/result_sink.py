"""The results and dead-letter topics: an idempotent producer with awaitable acks.

A request's offset may be committed only once its result (or dead letter) is
acknowledged by the broker with ``acks=all``; `ResultSink.publish` returns when that
acknowledgement arrives, and retries a failed delivery with backoff for as long as
the worker owns the request, so a broker outage delays results but loses none. What is
retried and what is final comes from the failure table (stage ``publish``): a message over
the size limit becomes a dead letter; a fatal error of the producer (librdkafka's ``fatal()``,
reported to ``on_fatal``) ends every delivery, and the worker stops.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from consumer.backoff import DELIVERY, QUEUE_FULL
from consumer.errors import MessageTooLarge, SinkError, SinkFatal
from consumer.failure_table import TABLE
from consumer.records import HEADER_PREFIX, Outcome, dead_letter

log = logging.getLogger(__name__)

Headers = Sequence[tuple[str, bytes | str | None]]

# Refusals for size (by this producer, or by the broker for the topic): final.
_TOO_LARGE = frozenset({KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE})
# The publish errors the failure table does not retry.
_FINAL = tuple(c for (stage, c), r in TABLE.items() if stage == "publish" and r.action != "retry")


class ResultSink:
    """Sends outcomes to their topics and lets coroutines await each delivery report.

    Args:
        config: librdkafka producer configuration (bootstrap, security).
        loop: the event loop whose futures receive delivery reports.
        results_topic: where results go.
        dlq_topic: where dead letters go.
        worker_id: recorded in the dead letters the sink makes itself (oversized results).
        on_fatal: told the cause when the producer fails for good or its thread dies (any
            thread).
    """

    def __init__(
        self,
        config: dict[str, Any],
        loop: asyncio.AbstractEventLoop,
        *,
        results_topic: str,
        dlq_topic: str,
        worker_id: str = "",
        on_fatal: Callable[[str], None] = lambda cause: None,
    ) -> None:
        self._results_topic = results_topic
        self._on_fatal = on_fatal
        self._fatal: str | None = None  # set once; read by the loop
        self._dlq_topic = dlq_topic
        self._worker_id = worker_id
        self._producer = Producer(
            {
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "compression.type": "lz4",
                "queue.buffering.max.messages": 200_000,
                # Bounded: a delivery that cannot complete is reported and retried by us.
                "message.timeout.ms": 60_000,
                **config,
                "error_cb": self._on_error,
            }
        )
        self._loop = loop
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="result-sink", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            while not self._stop.is_set():
                self._producer.poll(0.05)  # runs delivery callbacks on this thread
        except Exception as exc:
            log.debug("result sink thread failed", exc_info=exc)
            self._on_fatal(f"its delivery thread died: {exc!r}")

    def _on_error(self, error: KafkaError) -> None:
        """librdkafka's ``error_cb`` (this sink's thread): a fatal error ends every delivery."""
        if error.fatal() and self._fatal is None:
            self._fatal = error.str()
            self._on_fatal(f"fatal Kafka error: {error.str()}")

    def inject_fatal(self) -> None:
        """Test-only: reports a fatal producer error, as librdkafka would (a broken idempotent
        sequence cannot be caused on demand against a healthy broker)."""
        error = KafkaError(KafkaError._FATAL, "test fault: idempotent sequence broken", fatal=True)
        self._on_error(error)

    def topic_of(self, outcome: Outcome) -> str:
        """The topic an outcome goes to."""
        return self._results_topic if outcome.destination == "result" else self._dlq_topic

    async def publish(self, outcome: Outcome) -> Outcome:
        """Sends ``outcome`` to its topic and returns once the broker acknowledged it.

        Returns:
            The outcome as sent: a message over the topic's size limit is replaced by a
            dead letter (see `_publish_oversized`).
        """
        try:
            await self.send(self.topic_of(outcome), outcome.job.key, outcome.value, outcome.headers)
            return outcome
        except MessageTooLarge as exc:
            return await self._publish_oversized(outcome, exc)

    async def _publish_oversized(self, outcome: Outcome, error: MessageTooLarge) -> Outcome:
        """A message over the topic's size limit must not block its partition: a result
        becomes a dead letter; a dead letter goes without its value, its headers saying
        where the original still lies (source topic, partition, offset)."""
        job = outcome.job
        where = {
            "request_id": job.request_id,
            "partition": job.source.partition,
            "offset": job.offset,
        }
        log.error("%s; sending a dead letter without the value", error.message, extra=where)
        if outcome.destination == "result":
            outcome = dead_letter(job, error, self._worker_id)
            try:
                await self.send(self._dlq_topic, job.key, outcome.value, outcome.headers)
                return outcome
            except MessageTooLarge:
                pass
        size = str(len(job.value or b"")).encode()
        headers = [h for h in outcome.headers or [] if h[0].startswith(HEADER_PREFIX)]
        headers.append((HEADER_PREFIX + "value.omitted", size))
        slim = Outcome(job, "dead_letter", None, headers, outcome.status)
        await self.send(self._dlq_topic, job.key, None, headers)
        return slim

    async def send(
        self,
        topic: str,
        key: bytes | str | None,
        value: bytes | None,
        headers: Headers | None = None,
    ) -> None:
        """Produces one message and returns once the broker acknowledged it.

        Retries failed deliveries with exponential backoff and jitter until it
        succeeds or the calling task is cancelled (its partition was revoked).

        Raises:
            MessageTooLarge: the message exceeds the producer's or the topic's size limit.
            SinkFatal: the producer failed for good.
        """

        def on_retry(error: BaseException, delay: float) -> None:
            log.warning("delivery to %s failed, retrying in %.1fs: %s", topic, delay, error)

        await DELIVERY.retry(
            lambda: self._send_once(topic, key, value, headers),
            SinkError,
            give_up_on=_FINAL,
            on_retry=on_retry,
        )

    async def _send_once(
        self, topic: str, key: bytes | str | None, value: bytes | None, headers: Headers | None
    ) -> None:
        if self._fatal is not None:
            raise SinkFatal(f"the results producer failed: {self._fatal}")
        future: asyncio.Future[None] = self._loop.create_future()

        def on_delivery(error: KafkaError | None, _message: Message) -> None:
            self._loop.call_soon_threadsafe(_settle, future, error)

        async def produce() -> None:
            try:
                self._producer.produce(
                    topic, value=value, key=key, headers=list(headers or []),
                    on_delivery=on_delivery,
                )  # fmt: skip
            except KafkaException as exc:
                raise _sink_error(f"produce to {topic} refused", exc.args[0]) from exc

        await QUEUE_FULL.retry(produce, BufferError)
        await future

    def flush(self, timeout: float) -> int:
        """Waits for outstanding deliveries; returns how many are still in the queue."""
        return int(self._producer.flush(timeout))

    def close(self, timeout: float = 10.0) -> None:
        """Flushes and stops the delivery thread."""
        remaining = self.flush(timeout)
        if remaining:
            log.error(
                "%d messages not delivered at shutdown (their offsets stay uncommitted)", remaining
            )
        self._stop.set()
        self._thread.join(timeout)


def _settle(future: asyncio.Future[None], error: KafkaError | None) -> None:
    if future.done():  # the awaiting task was cancelled meanwhile
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(_sink_error("delivery failed", error))


def _sink_error(what: str, error: KafkaError) -> SinkError:
    kind = MessageTooLarge if error.code() in _TOO_LARGE else SinkError
    if error.fatal() or error.code() == KafkaError._FATAL:
        kind = SinkFatal
    return kind(f"{what}: {error}")
