"""The cases of ``cpu_overhead`` and the runs that measure them over one published backlog.

`Case` is one measured configuration (a worker with some flags, or the pass-through loop) and
`CASES` the ones compared; `Run` holds the shared set-up (broker, published requests) and runs a
case over the whole backlog, or an idle worker; `summary` turns a run's results and CPU samples
into its report row.
"""

from __future__ import annotations

import importlib
import os
import signal
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evalstream_local.processes import ManagedProcess

# benchmarks/ is not a package (no __init__.py), so mypy names benchmarks/harness.py `harness`
# while Python, running `-m benchmarks.cpu_overhead`, imports it as `benchmarks.harness`.
if TYPE_CHECKING:
    import harness
    import reporting
    import sampling
else:
    harness = importlib.import_module("benchmarks.harness")
    reporting = importlib.import_module("benchmarks.reporting")
    sampling = importlib.import_module("benchmarks.sampling")

RUN_TIMEOUT_S = 300.0
PASSTHROUGH_BYTES = 1500  # result size before a worker case has measured the real one


@dataclass(frozen=True)
class Case:
    """One measured configuration: a worker with these flags, or the pass-through loop."""

    name: str
    worker_options: tuple[str, ...] | None  # None: the pass-through loop


CASES = (
    Case("fixed-256", ("--window-policy", "fixed", "--window", "256")),
    Case("adaptive", ("--window-policy", "adaptive")),
    Case(
        "fixed-256-eos",
        ("--window-policy", "fixed", "--window", "256", "--processing-guarantee", "exactly_once"),
    ),
    Case("passthrough", None),
)


class Run:
    """The shared set-up (broker, published backlog) and the measured runs over it."""

    def __init__(self, bench: harness.Bench, requests: int) -> None:
        self.bench = bench
        self.requests = requests
        self.bootstrap = bench.broker()
        self.broker_pid = sampling.java_child_pid()
        self.file = bench.work / "requests.jsonl"
        lines = harness.synth(requests, self.file)
        self.request_bytes = sum(map(len, lines)) / len(lines)
        self.topic = "bench.cpu.requests"
        harness.Topics.fresh(self.topic, "setup").create(self.bootstrap)
        harness.publish(self.bootstrap, self.topic, self.file)
        self.result_bytes: int | None = None  # the first worker case's mean result size

    def measure(self, case: Case, url: str, engine_pid: int) -> dict[str, Any]:
        """Runs one case over the whole backlog."""
        topics = harness.Topics.fresh(self.topic, case.name)
        topics.create(self.bootstrap)
        is_worker = case.worker_options is not None
        reader = sampling.ResultReader(self.bootstrap, topics.results, timings=is_worker)
        load_before = reporting.load_average()
        process = self.start(case, topics, url)
        tracer = sampling.Tracer(self.watched_pids(process.pid, engine_pid))
        tracer.sample(0)
        if not is_worker:
            process.signal(signal.SIGUSR1)  # start-up is over and measured: go
        try:
            complete = sampling.drive(reader, self.requests, tracer, process.alive, RUN_TIMEOUT_S)
        finally:
            exit_code = process.stop()
            reader.close()
        n = len(reader)
        span = (int(0.1 * n), int(0.9 * n)) if is_worker else (0, n)
        out = summary(case, reader, tracer, span) | {
            "complete": complete,
            "exit_code": exit_code,
            "load_average": [load_before, reporting.load_average()],
        }
        if is_worker and reader.value_bytes and self.result_bytes is None:
            self.result_bytes = round(reader.value_bytes / n)
        return out

    def idle(self, url: str, seconds: float = 10.0) -> dict[str, Any]:
        """A worker's CPU use with nothing to do (an empty requests topic), once it has joined."""
        topics = harness.Topics.fresh(f"bench.cpu.empty.{time.monotonic_ns()}", "idle")
        topics.create(self.bootstrap)
        worker = self.bench.worker(topics, url, "openai", *(CASES[0].worker_options or ()))
        try:
            deadline = time.monotonic() + 60
            while "assigned" not in self.bench.log(topics.group).read_text():
                if time.monotonic() > deadline or not worker.alive():
                    return {}
                time.sleep(0.2)
            before = sampling.process_cpu_s(worker.pid)
            time.sleep(seconds)
            used = sampling.process_cpu_s(worker.pid) - before
        finally:
            worker.stop()
        return {"seconds": seconds, "cpu_s": used, "cores_used": used / seconds}

    def watched_pids(self, pid: int, engine_pid: int) -> dict[str, int]:
        """The processes whose CPU a run samples: ``pid`` as the worker, the engine, the broker."""
        pids = {"worker": pid, "engine": engine_pid}
        if self.broker_pid is not None:
            pids["broker"] = self.broker_pid
        return pids

    def start(self, case: Case, topics: harness.Topics, url: str) -> ManagedProcess:
        """Starts the case's worker, or the pass-through loop (ready, waiting for SIGUSR1)."""
        if case.worker_options is not None:
            return self.bench.worker(topics, url, "openai", *case.worker_options)
        args = [self.bootstrap, topics.requests, topics.results, topics.group]
        process = ManagedProcess.python(
            "benchmarks.cpu_overhead",
            "passthrough",
            *args,
            str(self.result_bytes or PASSTHROUGH_BYTES),
            log_path=self.bench.log(topics.group),
        )
        self.bench.process(process).start("ready")
        return process


def summary(
    case: Case, reader: sampling.ResultReader, tracer: sampling.Tracer, span: tuple[int, int]
) -> dict[str, Any]:
    """Results, rates, latencies and CPU per request between two result counts."""
    n = len(reader)
    out: dict[str, Any] = {
        "case": case.name,
        "worker_options": list(case.worker_options or []),
        "results": n,
        "failed_results": reader.failed,
        "mean_result_bytes": round(reader.value_bytes / n) if n else None,
        "requests_per_s": reporting.rates(list(reader.times.values())),
        "first_result_after_s": next((s[0] for s in tracer.samples if s[1] > 0), None),
        "worker_cpu_s_total": tracer.samples[-1][2]["worker"],
        "latency_s": {
            name: {f"p{q}": reporting.percentile(values, q) for q in (50, 95)}
            for name, values in reader.latencies.items()
        },
    }
    measured = tracer.between(*span)
    seconds, results = measured["seconds"], measured["results"]
    if results > 0 and seconds > 0:
        cpu = measured["cpu_s"]
        out["cpu"] = {
            "span_results": list(span),
            "seconds": seconds,
            "results": results,
            "requests_per_s": results / seconds,
            "us_per_request": {k: 1e6 * v / results for k, v in cpu.items()},
            "cores_used": {k: v / seconds for k, v in cpu.items()},
            "machine_busy_share": cpu["machine"] / (seconds * (os.cpu_count() or 1)),
        }
    return out


def num(value: float | None, digits: int = 0) -> str:
    """A figure for a printed line: ``-`` for none, else ``digits`` decimals."""
    return "-" if value is None else f"{value:.{digits}f}"
