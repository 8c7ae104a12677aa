"""Shared parts of the local benchmarks (``cpu_overhead`` and ``window_sweep``).

`Bench` owns every process a benchmark starts (the local broker, the engine simulator,
workers, profilers) and stops them all on the way out: at the end, on an error, on Ctrl-C
or on SIGTERM. `ResultReader` counts results on a results topic by key, timed by their
Kafka timestamps (set when the worker produced them). `Tracer` samples, while a run goes,
how many results are in and how many CPU seconds each watched process has used.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import confluent_kafka
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from consumer.local.kafka import KAFKA_VERSION, LocalKafka
from consumer.local.processes import ManagedProcess
from consumer.local.topics import create_topics

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"
SIM_MODEL = "evalstream-sim-gemma3-1b"
PARTITIONS = 8
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Topics:
    """The topics and consumer group of one run; fresh names keep runs apart."""

    requests: str
    results: str
    dlq: str
    group: str

    @classmethod
    def fresh(cls, requests: str, label: str) -> Topics:
        """New results/dead-letter topics and group for ``label`` over a shared requests topic."""
        stamp = f"bench.{label}.{uuid.uuid4().hex[:6]}"
        return cls(requests, f"{stamp}.results", f"{stamp}.dlq", stamp)

    def create(self, bootstrap: str, partitions: int = PARTITIONS) -> None:
        """Creates the three topics (an existing requests topic is kept)."""
        sizes = {self.requests: partitions, self.results: partitions, self.dlq: 1}
        create_topics(bootstrap, sizes)


def machine() -> dict[str, Any]:
    """The machine and software a result was measured on."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "confluent_kafka": confluent_kafka.version()[0],
        "librdkafka": confluent_kafka.libversion()[0],
        "kafka_broker": KAFKA_VERSION,
        "httpx": version("httpx"),
        "pydantic": version("pydantic"),
        "load_average_at_start": load_average(),
        "source": source(),
    }


def source() -> dict[str, Any]:
    """The commit measured, and any uncommitted change to the worker's code."""

    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return result.stdout.strip() if result.returncode == 0 else "unknown"

    changed = git("status", "--porcelain", "--", "consumer", "producer")
    return {"commit": git("rev-parse", "HEAD"), "uncommitted": changed.splitlines()}


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


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


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def rates(times: Sequence[float]) -> dict[str, float | None]:
    """Results per second, from the results' times.

    ``first_to_last``; ``steady_10_90`` (between the 10 % and the 90 % result); ``late_50_90``
    (from the 50 % result: an adaptive window has had time to settle); ``idle_100ms_share``: the
    share of 100 ms slots between first and last result in which none came (stalls).
    """
    ordered = sorted(times)
    n = len(ordered)
    if n < 10 or ordered[-1] <= ordered[0]:
        return dict.fromkeys(("first_to_last", "steady_10_90", "late_50_90", "idle_100ms_share"))

    def rate(low: float, high: float) -> float | None:
        first, last = int(low * (n - 1)), int(high * (n - 1))
        seconds = ordered[last] - ordered[first]
        return (last - first) / seconds if seconds > 0 else None

    slots = {int((t - ordered[0]) * 10) for t in ordered}
    return {
        "first_to_last": rate(0.0, 1.0),
        "steady_10_90": rate(0.1, 0.9),
        "late_50_90": rate(0.5, 0.9),
        "idle_100ms_share": 1 - len(slots) / (max(slots) + 1),
    }


def per_second(times: Sequence[float]) -> list[int]:
    """Results in each second from the first result on."""
    if not times:
        return []
    first = min(times)
    counts = [0] * (int(max(times) - first) + 1)
    for t in times:
        counts[int(t - first)] += 1
    return counts


def synth(count: int, path: Path, seed: int = 7) -> list[bytes]:
    """Writes ``count`` synthetic requests to ``path``; returns the lines."""
    command = [sys.executable, "-m", "producer", "synth", "--count", str(count)]
    subprocess.run([*command, "--seed", str(seed), "-o", str(path)], check=True, cwd=ROOT)
    return path.read_bytes().splitlines()


def publish(bootstrap: str, topic: str, path: Path) -> None:
    """Publishes a JSONL file of requests with ``evalstream-producer publish``."""
    command = [sys.executable, "-m", "producer", "publish", str(path), "--no-progress"]
    command += ["--bootstrap-servers", bootstrap, "--topic", topic]
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)


def simulator_stats(url: str) -> dict[str, Any]:
    """The simulator's counters (``GET /_simulator/stats``)."""
    with urllib.request.urlopen(f"{url}/_simulator/stats", timeout=10) as response:
        stats: dict[str, Any] = json.loads(response.read())
    return stats


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Writes ``data`` as indented JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


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
            [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)]
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


class Bench:
    """Starts the broker, the simulator and workers; stops all of them on exit.

    Args:
        label: names the work directory (logs) under the system's temporary directory.
    """

    def __init__(self, label: str) -> None:
        self.work = Path(tempfile.mkdtemp(prefix=f"evalstream-{label}-"))
        self._stack = contextlib.ExitStack()
        self.bootstrap = ""

    def __enter__(self) -> Bench:
        previous = signal.signal(signal.SIGTERM, _interrupt)
        self._stack.callback(signal.signal, signal.SIGTERM, previous)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # A second Ctrl-C while stopping would leave processes behind: ignore it meanwhile.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            self._stack.close()
        finally:
            signal.signal(signal.SIGINT, previous)

    def broker(self) -> str:
        """Starts the local broker; returns its bootstrap address."""
        data = self.work / "kafka"
        kafka = LocalKafka(data)
        # Callbacks run last-in first-out: the data goes once the broker has stopped.
        self._stack.callback(shutil.rmtree, data, ignore_errors=True)
        self._stack.callback(kafka.stop)
        self.bootstrap = kafka.start()
        return self.bootstrap

    def simulator(
        self, profile: str, time_scale: float = 1.0, *options: str
    ) -> tuple[str, ManagedProcess]:
        """Starts the engine simulator; returns its URL and process (stopped on exit at latest)."""
        args = ["engine", "--profile", profile, "--port", "0", "--model", SIM_MODEL]
        args += ["--time-scale", str(time_scale), *options]
        sim = ManagedProcess.python("consumer.local", *args, log_path=self.log(f"engine-{profile}"))
        url = self.process(sim).start("url", timeout=60)
        return url, sim

    def worker(self, topics: Topics, url: str, backend: str, *options: str) -> ManagedProcess:
        """Starts one worker on ``topics`` against the engine at ``url``."""
        args = ["--bootstrap-servers", self.bootstrap, "--group", topics.group]
        args += ["--requests-topic", topics.requests, "--results-topic", topics.results]
        args += ["--dlq-topic", topics.dlq, "--backend", backend, "--engine-url", url]
        args += ["--model", SIM_MODEL, "--metrics-port", "0", "--worker-id", topics.group]
        worker = self.process(
            ManagedProcess.python("consumer", *args, *options, log_path=self.log(topics.group))
        )
        worker.start()
        return worker

    def process(self, process: ManagedProcess) -> ManagedProcess:
        """Registers a process to be stopped on exit (not started here)."""
        self._stack.callback(process.stop)
        return process

    def log(self, name: str) -> Path:
        """A log file in the work directory."""
        return self.work / f"{name}.log"


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
