"""What a benchmark reads while a run goes: its results, and the CPU its processes use.

`ResultReader` counts results on a results topic by key, timed by their Kafka timestamps (set
when the worker produced them). `Tracer` samples, while a run goes, how many results are in and
how many CPU seconds each watched process has used (read from ``/proc``); `drive` reads and
samples until every result is in.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

# benchmarks/ is not a package (no __init__.py), so mypy names benchmarks/harness.py `harness`
# while Python, running `-m benchmarks.<module>`, imports it as `benchmarks.harness`.
if TYPE_CHECKING:
    import harness
else:
    harness = importlib.import_module("benchmarks.harness")

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads); 0 once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / _CLOCK_TICKS, sum(values[:8]) / _CLOCK_TICKS


def java_child_pid() -> int | None:
    """The broker's JVM among this process's children (LocalKafka does not expose it)."""
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        with contextlib.suppress(OSError):
            for pid in (task / "children").read_text().split():
                if Path(f"/proc/{pid}/comm").read_text().strip() == "java":
                    return int(pid)
    return None


class ResultReader:
    """Reads a results topic from the beginning, keeping each key's first result.

    Args:
        bootstrap: the broker.
        topic: the results topic.
        timings: also parse each result's ``timings`` (worker results only).
    """

    def __init__(self, bootstrap: str, topic: str, *, timings: bool = False) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"{topic}.reader",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 50,
            }
        )
        self._consumer.assign(
            [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(harness.PARTITIONS)]
        )
        self._timings = timings
        self.times: dict[bytes, float] = {}
        self.latencies: dict[str, list[float]] = {}
        self.value_bytes = 0
        self.failed = 0
        self.messages = 0  # duplicates included

    def __len__(self) -> int:
        return len(self.times)

    def poll(self, timeout: float) -> None:
        """Takes what arrived within ``timeout`` seconds."""
        for message in self._consumer.consume(num_messages=1000, timeout=timeout):
            key, value = message.key(), message.value()
            if message.error() is not None or key is None:
                continue
            self.messages += 1
            if key in self.times:
                continue
            self.times[key] = message.timestamp()[1] / 1000.0
            self.value_bytes += len(value or b"")
            if self._timings and value:
                self._parse(value)

    def _parse(self, value: bytes) -> None:
        result = json.loads(value)
        if result.get("status") != "ok":
            self.failed += 1
        timings = result.get("timings") or {}
        for name, seconds in timings.items():
            self.latencies.setdefault(name, []).append(float(seconds))
        if "queued_s" in timings and "inference_s" in timings:
            # In the worker: consumed from Kafka until the engine answered.
            worker_s = float(timings["queued_s"]) + float(timings["inference_s"])
            self.latencies.setdefault("in_worker_s", []).append(worker_s)

    def close(self) -> None:
        """Leaves the broker."""
        self._consumer.close()


@dataclass
class Tracer:
    """Samples (seconds since start, results in, CPU seconds per watched process)."""

    pids: dict[str, int]
    started: float = field(default_factory=time.monotonic)
    samples: list[tuple[float, int, dict[str, float]]] = field(default_factory=list)

    def sample(self, results: int) -> None:
        """Takes one sample; ``machine`` is the busy CPU seconds of the whole machine."""
        cpu = {name: process_cpu_s(pid) for name, pid in self.pids.items()}
        cpu["machine"] = machine_cpu()[0]
        self.samples.append((time.monotonic() - self.started, results, cpu))

    def between(self, low: int, high: int) -> dict[str, Any]:
        """Wall seconds, results and CPU seconds per process between two result counts."""
        first = next(s for s in self.samples if s[1] >= low)
        last = next((s for s in self.samples if s[1] >= high), self.samples[-1])
        results = last[1] - first[1]
        seconds = last[0] - first[0]
        cpu = {name: last[2][name] - first[2][name] for name in last[2]}
        return {"seconds": seconds, "results": results, "cpu_s": cpu}


def drive(
    reader: ResultReader,
    expected: int,
    tracer: Tracer,
    alive: Callable[[], bool],
    timeout: float,
    every: float = 0.25,
) -> bool:
    """Reads results until ``expected`` are in; samples every ``every`` seconds.

    Returns:
        Whether every result arrived (False: time ran out or ``alive()`` turned false).
    """
    deadline = time.monotonic() + timeout
    next_sample = 0.0
    while len(reader) < expected and time.monotonic() < deadline and alive():
        reader.poll(0.05)
        if time.monotonic() >= next_sample:
            tracer.sample(len(reader))
            next_sample = time.monotonic() + every
    tracer.sample(len(reader))
    return len(reader) >= expected
