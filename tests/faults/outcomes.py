"""Accounting for the fault suite: every request's results and dead letters, and their timing.

A scenario publishes ``N`` requests, injects its fault, and then checks the invariant at the
consumer side: after de-duplication by request id, every request has exactly one outcome, a
result or a dead letter, and nothing else arrived. The raw duplicate count and the recovery
time are measured from the messages themselves: the results and dead-letter topics stamp each
message with the broker's append time, so neither a slow reader nor a message that waited in
the worker's producer during an outage distorts them.
"""

from __future__ import annotations

import importlib
import json
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Literal

from confluent_kafka import Consumer, Message

# Documented in confluent_kafka.admin, which imports them without re-exporting them.
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from tests.integration.pipeline import Pipeline, committed, end_offsets, produce, wait_until

REPORT_FILE = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "faults.jsonl"
DLQ_REASON = "evalstream.error.reason"


def request_id(i: int) -> str:
    """The id (and key) of the ``i``-th request of a scenario."""
    return f"req-{i:06d}"


def request_value(i: int) -> bytes:
    """A valid native request; five jobs, so the engine's prefix cache sees reuse."""
    return json.dumps(
        {
            "id": request_id(i),
            "candidate": {"id": f"cand-{i}", "text": f"Candidate {i}: Python, Kafka, SQL."},
            "job": {"id": f"job-{i % 5}", "title": "Backend engineer", "text": "Streams."},
        }
    ).encode()


def publish(pipeline: Pipeline, total: int) -> None:
    """Produces the scenario's requests, keyed by id, with acks=all."""
    produce(
        pipeline.bootstrap,
        pipeline.topics.requests,
        ((request_id(i).encode(), request_value(i), None) for i in range(total)),
    )


# The broker stamps each message when it appends it (not when the producer was called).
APPEND_TIME = {"message.timestamp.type": "LogAppendTime"}


def stamp_append_time(admin: AdminClient, *topics: str) -> None:
    """Makes the broker timestamp every message of ``topics`` with its append time."""
    entries = [
        ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
        for name, value in APPEND_TIME.items()
    ]
    resources = [
        ConfigResource(ResourceType.TOPIC, topic, incremental_configs=entries) for topic in topics
    ]
    for future in admin.incremental_alter_configs(resources).values():
        future.result(timeout=30)


@dataclass(frozen=True, slots=True)
class Outcome:
    """One message of the results or dead-letter topic.

    Attributes:
        request_id: the request it answers.
        kind: ``result`` or ``dead_letter``.
        status: the result's status (``ok``/``error``) or the dead letter's reason.
        reason: the error reason of an ``error`` result or a dead letter, else "".
        partition: the source partition of the request.
        offset: the source offset of the request.
        attempts: the engine calls the worker made for it.
        created_s: when the broker appended the message (seconds since the epoch).
        worker: the id of the worker that wrote it.
    """

    request_id: str
    kind: Literal["result", "dead_letter"]
    status: str
    reason: str
    partition: int
    offset: int
    attempts: int
    created_s: float
    worker: str = ""


def _result(message: Message) -> Outcome:
    data = json.loads(message.value() or b"{}")
    error = data.get("error") or {}
    return Outcome(
        request_id=data["id"],
        kind="result",
        status=data["status"],
        reason=error.get("reason", ""),
        partition=data["source"]["partition"],
        offset=data["source"]["offset"],
        attempts=data["attempts"],
        created_s=message.timestamp()[1] / 1000,
        worker=data.get("worker_id", ""),
    )


def _dead_letter(message: Message) -> Outcome:
    raw = message.headers() or []
    items = raw.items() if isinstance(raw, dict) else raw
    headers = {k: v.decode() if isinstance(v, bytes) else (v or "") for k, v in items}
    reason = headers.get(DLQ_REASON, "")
    return Outcome(
        request_id=(message.key() or b"").decode(),
        kind="dead_letter",
        status=reason,
        reason=reason,
        partition=int(headers.get("evalstream.source.partition", "-1")),
        offset=int(headers.get("evalstream.source.offset", "-1")),
        attempts=int(headers.get("evalstream.attempts", "0")),
        created_s=message.timestamp()[1] / 1000,
        worker=headers.get("evalstream.worker", ""),
    )


class OutcomeWatcher:
    """Reads the results and dead-letter topics from the start in a background thread.

    Args:
        bootstrap: the broker.
        results: the results topic.
        dlq: the dead-letter topic.
    """

    def __init__(self, bootstrap: str, results: str, dlq: str) -> None:
        self._topics = {results: _result, dlq: _dead_letter}
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"outcomes-{time.monotonic_ns()}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                # The broker may be killed under it: keep reconnecting quickly, quietly.
                "reconnect.backoff.max.ms": 1000,
                "log_level": 2,
            }
        )
        self._consumer.subscribe([results, dlq])
        self._outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outcomes", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                batch = [
                    self._topics[m.topic() or ""](m)
                    for m in self._consumer.consume(500, 0.2)
                    if m.error() is None
                ]
                with self._lock:
                    self._outcomes.extend(batch)
        finally:
            self._consumer.close()

    def outcomes(self) -> list[Outcome]:
        """Every outcome read so far, duplicates kept, in arrival order."""
        with self._lock:
            return list(self._outcomes)

    def distinct(self) -> int:
        """Requests with at least one outcome so far."""
        return len({o.request_id for o in self.outcomes()})

    def wait_distinct(self, count: int, timeout: float) -> bool:
        """Waits until ``count`` requests have an outcome."""
        return wait_until(lambda: self.distinct() >= count, timeout)

    def close(self) -> None:
        """Stops reading."""
        self._stop.set()
        self._thread.join()


@dataclass(frozen=True)
class Accounting:
    """The outcome of a run, checked against the requests that went in.

    Attributes:
        results: request id -> its result statuses (one per copy received).
        dead_letters: request id -> its dead-letter reasons (one per copy received).
        duplicates: outcome messages beyond the first per request.
        outcomes: every outcome message.
    """

    results: dict[str, list[Outcome]]
    dead_letters: dict[str, list[Outcome]]
    duplicates: int
    outcomes: list[Outcome]

    @classmethod
    def of(cls, outcomes: list[Outcome], total: int) -> Accounting:
        """Checks the invariant and returns the accounting.

        Raises:
            AssertionError: a request has no outcome, both kinds, or an unknown id arrived.
        """
        results: dict[str, list[Outcome]] = {}
        dead: dict[str, list[Outcome]] = {}
        for outcome in outcomes:
            (results if outcome.kind == "result" else dead).setdefault(
                outcome.request_id, []
            ).append(outcome)
        expected = {request_id(i) for i in range(total)}
        lost = expected - set(results) - set(dead)
        assert not lost, f"{len(lost)} requests have no outcome, e.g. {sorted(lost)[:5]}"
        unknown = (set(results) | set(dead)) - expected
        assert not unknown, f"outcomes for requests never sent: {sorted(unknown)[:5]}"
        both = set(results) & set(dead)
        assert not both, f"{len(both)} requests have a result and a dead letter: {sorted(both)[:5]}"
        return cls(results, dead, len(outcomes) - total, outcomes)

    def first_outcome_s(self) -> dict[str, float]:
        """When each request got its first outcome (broker timestamp)."""
        first: dict[str, float] = {}
        for outcome in self.outcomes:
            if outcome.request_id not in first or outcome.created_s < first[outcome.request_id]:
                first[outcome.request_id] = outcome.created_s
        return first

    def recovery_s(self, since: float) -> float:
        """Seconds from ``since`` (epoch) until a request not finished before it finished.

        That is how long the pipeline made no new progress after the fault ended: re-done
        (duplicate) work does not count as progress.
        """
        later = [t for t in self.first_outcome_s().values() if t > since]
        assert later, f"no request finished after {since}"
        return round(min(later) - since, 3)

    def longest_stall_s(self, start: float | None = None, end: float | None = None) -> float:
        """The longest time in which no request finished, between ``start`` and ``end`` (epoch).

        They default to the first and the last outcome: the longest pause of a running pipeline.
        """
        first = sorted(self.first_outcome_s().values())
        start = first[0] if start is None else start
        end = first[-1] if end is None else end
        edges = [start, *(t for t in first if start <= t <= end), end]
        return round(max(b - a for a, b in pairwise(edges)), 3)

    def copies_by_source(self) -> Counter[tuple[int, int]]:
        """How many outcome messages each source (partition, offset) produced."""
        return Counter((o.partition, o.offset) for o in self.outcomes)


def assert_all_committed(pipeline: Pipeline, partitions: int, timeout: float = 60.0) -> None:
    """Waits until the group's committed offsets reach the end of every requests partition."""
    topics = pipeline.topics
    ends = end_offsets(pipeline.bootstrap, topics.requests, partitions)
    assert wait_until(
        lambda: committed(pipeline.bootstrap, topics.group, topics.requests, partitions) == ends,
        timeout,
        interval=1.0,
    ), (
        f"committed {committed(pipeline.bootstrap, topics.group, topics.requests, partitions)}"
        f" != end offsets {ends}"
    )


def report(
    scenario: str,
    requests: int,
    duplicates: int,
    recovery_s: float,
    **details: object,
) -> None:
    """Prints the scenario's ``FAULT-REPORT`` line and appends it to ``faults.jsonl``."""
    line = (
        f"FAULT-REPORT scenario={scenario} requests={requests} lost=0 "
        f"duplicates={duplicates} recovery_s={recovery_s:.2f}"
    )
    print(f"\n{line} {json.dumps(details, sort_keys=True)}")
    REPORT_FILE.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "scenario": scenario,
        "requests": requests,
        "lost": 0,
        "duplicates": duplicates,
        "recovery_s": recovery_s,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": importlib.import_module("benchmarks.reporting").source(),
        **details,
    }
    with REPORT_FILE.open("a") as out:
        out.write(json.dumps(record, sort_keys=True) + "\n")


def reasons(outcomes: Iterable[Outcome]) -> dict[str, int]:
    """Counts of outcome statuses/reasons, for the report."""
    return dict(Counter(f"{o.kind}:{o.reason or o.status}" for o in outcomes))


PARTITIONS = 4
# The simulator's vLLM latency model, sped up: a few thousand requests take tens of seconds.
TIME_SCALE = "20"
WINDOW = 32
# A fixed window keeps the uncommitted window, and so the duplicates a crash may cause, bounded.
WORKER_ARGS = ("--window-policy", "fixed", "--window", str(WINDOW))
