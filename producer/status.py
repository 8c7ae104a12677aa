"""`GroupStatus`: consumer-group lag, throughput and ETA of the worker fleet.

Lag per partition is the end offset minus the group's committed offset (or minus the earliest
retained offset when the group has committed nothing there yet, since the workers start from the
beginning). The rate comes from how fast committed offsets advance between samples, or from
Prometheus (``sum(rate(evalstream_completed_total[1m]))``) when its URL is given; the ETA is the
backlog divided by that rate.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx
from confluent_kafka import Consumer, KafkaException, TopicPartition
from rich.console import Group
from rich.table import Table
from rich.text import Text

from producer.errors import StatusError

PROMETHEUS_QUERY = "sum(rate(evalstream_completed_total[1m]))"
# The offset-based rate is measured over the samples of the last minute, like the PromQL rate.
RATE_WINDOW_S = 60.0


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """Offsets of one partition.

    Attributes:
        partition: The partition number.
        committed: The group's committed offset, or None if it has none.
        low: The earliest retained offset.
        high: The end offset (the offset the next message will get).
    """

    partition: int
    committed: int | None
    low: int
    high: int

    @property
    def lag(self) -> int:
        """Messages not yet committed by the group."""
        start = self.committed if self.committed is not None else self.low
        return max(0, self.high - max(start, self.low))


@dataclass(frozen=True, slots=True)
class LagSnapshot:
    """All partitions of the topic at one moment (``taken_at`` is monotonic seconds)."""

    taken_at: float
    partitions: tuple[PartitionLag, ...]

    @property
    def backlog(self) -> int:
        """Total lag over all partitions."""
        return sum(partition.lag for partition in self.partitions)


def committed_between(before: LagSnapshot, after: LagSnapshot) -> int:
    """Messages the group committed between two snapshots (partitions new in ``after`` count
    from their earliest offset)."""
    earlier = {p.partition: p for p in before.partitions}
    total = 0
    for partition in after.partitions:
        old = earlier.get(partition.partition)
        if partition.committed is None or old is None:
            continue
        start = old.committed if old.committed is not None else old.low
        total += max(0, partition.committed - start)
    return total


class RateWindow:
    """Estimates the commit rate from the snapshots of the last `RATE_WINDOW_S` seconds."""

    def __init__(self, window_s: float = RATE_WINDOW_S) -> None:
        self.window_s = window_s
        self._snapshots: deque[LagSnapshot] = deque()

    def add(self, snapshot: LagSnapshot) -> None:
        """Records a snapshot and forgets those that left the window (keeping one before it)."""
        self._snapshots.append(snapshot)
        while (
            len(self._snapshots) > 2
            and snapshot.taken_at - self._snapshots[1].taken_at >= self.window_s
        ):
            self._snapshots.popleft()

    def rate(self) -> float | None:
        """Messages per second, or None before two snapshots exist."""
        if len(self._snapshots) < 2:
            return None
        first, last = self._snapshots[0], self._snapshots[-1]
        elapsed = last.taken_at - first.taken_at
        return committed_between(first, last) / elapsed if elapsed > 0 else None


def eta_seconds(backlog: int, rate: float | None) -> float | None:
    """Seconds until the backlog is gone at the given rate (0 when empty, None if unknowable)."""
    if backlog == 0:
        return 0.0
    if not rate or rate <= 0:
        return None
    return backlog / rate


def prometheus_rate(url: str, timeout: float = 5.0, client: httpx.Client | None = None) -> float:
    """Queries Prometheus for the fleet's completion rate in results per second.

    Raises:
        StatusError: Prometheus cannot be reached or answers something unexpected.
    """
    endpoint = url.rstrip("/") + "/api/v1/query"
    try:
        if client is None:
            response = httpx.get(endpoint, params={"query": PROMETHEUS_QUERY}, timeout=timeout)
        else:
            response = client.get(endpoint, params={"query": PROMETHEUS_QUERY}, timeout=timeout)
        response.raise_for_status()
        data = response.json()["data"]["result"]
        return float(data[0]["value"][1]) if data else 0.0
    except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise StatusError(f"Prometheus at {url}: {exc}") from exc


class GroupStatus:
    """Samples a consumer group's committed offsets and a topic's end offsets.

    It reads offsets without joining the group, so it never triggers a rebalance of the workers.

    Args:
        bootstrap_servers: Kafka bootstrap servers.
        group: The workers' consumer group.
        topic: The requests topic.
        timeout: Seconds each broker request may take.
        **kafka_config: librdkafka options.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        group: str,
        topic: str,
        *,
        timeout: float = 10.0,
        **kafka_config: Any,
    ) -> None:
        self.group = group
        self.topic = topic
        self.timeout = timeout
        config = {
            "bootstrap.servers": bootstrap_servers,
            "group.id": group,
            "enable.auto.commit": False,
            **kafka_config,
        }
        self._consumer = Consumer(config)

    def _partitions(self) -> list[int]:
        """The topic's partition numbers."""
        metadata = self._consumer.list_topics(self.topic, timeout=self.timeout)
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None or not topic.partitions:
            detail = f": {topic.error.str()}" if topic is not None and topic.error else ""
            raise StatusError(f"topic {self.topic!r} not found{detail}")
        return sorted(topic.partitions)

    def sample(self, taken_at: float) -> LagSnapshot:
        """Reads every partition's committed and watermark offsets.

        Args:
            taken_at: The monotonic time to stamp the snapshot with.

        Raises:
            StatusError: The topic does not exist or the broker does not answer.
        """
        try:
            wanted = [TopicPartition(self.topic, p) for p in self._partitions()]
            committed = self._consumer.committed(wanted, timeout=self.timeout)
            rows = []
            for position in committed:
                low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(self.topic, position.partition), timeout=self.timeout
                )
                offset = position.offset if position.offset >= 0 else None
                rows.append(PartitionLag(position.partition, offset, low, high))
        except KafkaException as exc:
            raise StatusError(f"offsets of {self.topic!r} for group {self.group!r}: {exc}") from exc
        return LagSnapshot(taken_at, tuple(rows))

    def close(self) -> None:
        """Closes the client (it never joined the group, so nothing rebalances)."""
        self._consumer.close()

    def __enter__(self) -> GroupStatus:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def format_duration(seconds: float | None) -> str:
    """``1h 02m 03s``, ``4m 05s`` or ``7s``; ``unknown`` for None."""
    if seconds is None:
        return "unknown"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def render_status(
    topic: str, group: str, snapshot: LagSnapshot, rate: float | None, rate_source: str
) -> Group:
    """The offsets table and a totals line, for printing or for rich Live."""
    table = Table(title=f"{topic} · group {group}", title_justify="left")
    for name in ("partition", "committed", "end", "lag"):
        table.add_column(name, justify="right")
    for row in snapshot.partitions:
        committed = f"{row.committed:,}" if row.committed is not None else "-"
        table.add_row(str(row.partition), committed, f"{row.high:,}", f"{row.lag:,}")
    shown_rate = f"{rate:,.2f}/s ({rate_source})" if rate is not None else "measuring…"
    eta = format_duration(eta_seconds(snapshot.backlog, rate))
    totals = Text(f"backlog {snapshot.backlog:,} · rate {shown_rate} · ETA {eta}")
    return Group(table, totals)
