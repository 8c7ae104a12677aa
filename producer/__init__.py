"""The upstream and downstream tools of evalstream, as a Python API.

Publish requests (validated against the wire contract, delivery confirmed)::

    from producer import RequestPublisher

    with RequestPublisher("localhost:9092", "evalstream.requests") as publisher:
        publisher.publish(request)  # an EvaluationRequest, a BatchRequestLine or a dict

Read results, each request id once (with ``dlq_topic=``, dead letters too)::

    from producer import ResultReader

    with ResultReader("localhost:9092", "evalstream.results") as reader:
        for received in reader:
            print(received.request_id, received.result.status)

The command line (``evalstream-producer``) is built on the same classes.
"""

from producer.collect import CollectReport, ResultCollector
from producer.dead_letters import DeadLetter
from producer.errors import (
    DeliveryError,
    InputError,
    InvalidRequestError,
    ProducerError,
    ResultStoreError,
    StatusError,
)
from producer.publish import KeyMode, RequestPublisher
from producer.result_reader import ReceivedResult, ResultReader
from producer.sinks import BatchOutputSink, JsonlSink, SinkFormat, SqliteSink, open_sink
from producer.status import GroupStatus
from producer.summary import ResultStats
from producer.synth import RequestSynthesizer

__all__ = [
    "BatchOutputSink",
    "CollectReport",
    "DeadLetter",
    "DeliveryError",
    "GroupStatus",
    "InputError",
    "InvalidRequestError",
    "JsonlSink",
    "KeyMode",
    "ProducerError",
    "ReceivedResult",
    "RequestPublisher",
    "RequestSynthesizer",
    "ResultCollector",
    "ResultReader",
    "ResultStats",
    "ResultStoreError",
    "SinkFormat",
    "SqliteSink",
    "StatusError",
    "open_sink",
]
