"""What an end-to-end run reads back through Kafka and keeps: results, dead letters, times.

``ResultReader`` reads a results topic from its beginning (first result per request);
``backlog_ready`` says whether an earlier run already published a backlog; ``dead_letters``
counts a dead-letter topic; ``write_result_times`` keeps one line per result (a rate can be
recomputed over any window from them); ``window_moves`` lists the adaptive window's moves as
the workers logged them.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from producer.usefulness import is_useful


class ResultReader:
    """Reads a results topic from its beginning, keeping each request's first result."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"{topic}.reader",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 100,
            }
        )
        self._consumer.assign(
            [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)]
        )
        self.results: dict[str, tuple[float, dict[str, Any]]] = {}

    def poll(self, timeout: float) -> None:
        """Takes what has arrived within ``timeout`` seconds."""
        for message in self._consumer.consume(num_messages=1000, timeout=timeout):
            raw = message.value()
            if message.error() is not None or raw is None:
                continue
            value = json.loads(raw)
            key = value.get("id") if "custom_id" not in value else value["custom_id"]
            if key is not None and key not in self.results:
                self.results[key] = (message.timestamp()[1] / 1000.0, value)

    def close(self) -> None:
        self._consumer.close()


def backlog_ready(bootstrap: str, topic: str, count: int) -> bool:
    """Whether ``topic`` already holds ``count`` messages (a backlog an earlier run published)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-backlog-check"})
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return False
        held = 0
        for partition in metadata.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 10)
            held += high - low
        return held == count
    finally:
        consumer.close()


def dead_letters(bootstrap: str, topic: str) -> int:
    """Messages on the dead-letter topic (sum of its partitions' end offsets)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}.count"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        total = 0
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            total += high - low
        return total
    finally:
        consumer.close()


def result_times_path(out_json: Path) -> Path:
    """Where a run's per-result times go: beside its JSON, gzip-compressed."""
    return out_json.with_name(out_json.stem + ".times.jsonl.gz")


def write_result_times(
    results: dict[str, tuple[float, dict[str, Any]]], started: float, path: Path
) -> None:
    """One line per result, in arrival order: seconds since the workers started, id, status,
    completion tokens, engine calls and whether it said something (a rate can be recomputed
    over any window from these)."""
    rows = []
    for key, (stamp, value) in sorted(results.items(), key=lambda kv: kv[1][0]):
        evaluation = value.get("evaluation")
        rows.append(
            {
                "t": round(stamp - started, 3),
                "id": key,
                "status": value.get("status") or ("ok" if value.get("error") is None else "error"),
                "tokens": (value.get("usage") or {}).get("completion_tokens"),
                "attempts": value.get("attempts"),
                "useful": is_useful(evaluation) if isinstance(evaluation, dict) else None,
            }
        )
    with gzip.open(path, "wt", encoding="utf-8") as out:
        out.writelines(json.dumps(row, separators=(",", ":")) + "\n" for row in rows)


MOVE = "window_controller: window "


def window_moves(work: Path) -> list[str]:
    """The adaptive window's moves, as the workers logged them (time, from -> to, why)."""
    moves: list[str] = []
    for log in sorted(work.glob("worker*.log")):
        with log.open(errors="replace") as lines:
            moves += [
                line.strip()[11:200] for line in lines if "window " in line and " -> " in line
            ]
    return moves
