"""The processes and data of a local benchmark: broker, engine simulator, workers, requests.

`Bench` owns every process a benchmark starts (the local broker, the engine simulator,
workers, profilers) and stops them all on the way out: at the end, on an error, on Ctrl-C
or on SIGTERM. `Topics` names one run's topics and consumer group; `synth` and `publish` make
and publish the synthetic requests; `simulator_stats` reads the simulator's counters.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from evalstream_local.broker.kafka import LocalKafka
from evalstream_local.processes import ManagedProcess
from evalstream_local.topics import create_topics

ROOT = Path(__file__).resolve().parents[1]
SIM_MODEL = "evalstream-sim-gemma3-1b"
PARTITIONS = 8


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
        sim = ManagedProcess.python(
            "evalstream_local", *args, log_path=self.log(f"engine-{profile}")
        )
        url = self.process(sim).start("url", timeout=60)
        return url, sim

    def worker(self, topics: Topics, url: str, backend: str, *options: str) -> ManagedProcess:
        """Starts one worker on ``topics`` against the engine at ``url``."""
        return self.worker_with_env(topics, url, backend, {}, *options)

    def worker_with_env(
        self, topics: Topics, url: str, backend: str, env: dict[str, str], *options: str
    ) -> ManagedProcess:
        """`worker` with extra ``EVALSTREAM_*`` variables."""
        args = ["--bootstrap-servers", self.bootstrap, "--group", topics.group]
        args += ["--requests-topic", topics.requests, "--results-topic", topics.results]
        args += ["--dlq-topic", topics.dlq, "--backend", backend, "--engine-url", url]
        args += ["--model", SIM_MODEL, "--metrics-port", "0", "--worker-id", topics.group]
        log = self.log(f"{topics.group}-{uuid.uuid4().hex[:4]}")
        worker = self.process(
            ManagedProcess.python("consumer", *args, *options, env=env, log_path=log)
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
