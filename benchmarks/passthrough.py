"""The pass-through loop of ``cpu_overhead``: the floor that Kafka and Python alone cost.

A minimal confluent-kafka loop, run in its own process (``python -m benchmarks.cpu_overhead
passthrough BOOTSTRAP REQUESTS RESULTS GROUP VALUE_BYTES``): consume a batch, produce one value
per request (acks=all, idempotent, lz4, as the worker's result sink), flush, commit.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition


def passthrough(argv: list[str]) -> int:
    """The baseline loop: consume a batch, produce one value per request, flush, commit.

    It connects, takes every partition of the requests topic and prints ``ready=1``, then
    waits for SIGUSR1, so the parent reads its CPU time after start-up and before any work.
    """
    bootstrap, requests, results, group, size = argv
    # Blocked before librdkafka starts its threads, which inherit the mask.
    waited = {signal.SIGUSR1, signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, waited)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    # The worker's result-sink settings, so the produce path costs the same.
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
        }
    )
    partitions = consumer.list_topics(requests, timeout=30).topics[requests].partitions
    producer.list_topics(results, timeout=30)
    consumer.assign([TopicPartition(requests, p, OFFSET_BEGINNING) for p in partitions])
    print("ready=1", flush=True)
    if signal.sigwait(waited) == signal.SIGUSR1:
        _relay(consumer, producer, results, int(size))
    consumer.close()
    producer.flush(10)
    return 0


def _relay(consumer: Consumer, producer: Producer, results: str, value_bytes: int) -> None:
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    while not stop.is_set():
        messages = consumer.consume(500, 0.1)
        for message in messages:
            if message.error() is None:
                # The request's own text, cut to the result's size: realistic to compress.
                value = (message.value() or b"")[:value_bytes]
                producer.produce(results, value=value, key=message.key())
        if messages:
            producer.flush()  # results acknowledged before their offsets are committed
            consumer.commit(asynchronous=True)
