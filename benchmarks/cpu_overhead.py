"""The worker's own CPU cost per request, next to a bare consume -> produce loop.

A local broker, the engine simulator's ``instant`` profile (it answers at once, so the engine
costs nothing but its HTTP handling) and ONE worker. ``--requests`` synthetic requests
(``evalstream-producer synth --seed 7``: ~9.5 KB each) are published to one requests topic
before anything consumes it; then each case reads the whole backlog with its own consumer group
and results topic:

* ``fixed-256``: the worker with ``--window-policy fixed --window 256``;
* ``adaptive``: the worker with its default (adaptive) window;
* ``fixed-256-eos``: ``fixed-256`` with ``--processing-guarantee exactly_once`` (results and
  offsets in one transaction per commit interval): the cost of exactly-once;
* ``passthrough``: a minimal confluent-kafka loop in its own process (consume, produce a value
  the size of the worker's mean result, acks=all, idempotent, lz4, commit) - the floor that
  Kafka and Python alone cost.

Throughput is results per second (results counted by key on the results topic, timed by their
Kafka timestamps), first to last and steady (10 % to 90 % of the results). CPU is read from
``/proc/<pid>/stat`` (user + system, all threads) while the results come in: for a worker over
the steady stretch, so start-up (imports, group join) is left out; the pass-through loop is over
within a sampling tick or two, so it is measured from a go signal, sent once it has started.

``--profile`` adds two runs under py-spy (100 Hz, non-blocking) on a topic holding the requests
three times over: the ``instant`` engine at a fixed window of 256, and the ``vllm`` profile at
``--time-scale 10`` with a fixed window of 128 (there the engine is the bottleneck). Each writes a
flame graph (``cpu_profile*.svg``) and the top functions by self and inclusive samples
(``cpu_profile*.txt``).

Run from the repository root::

    .venv/bin/python -m benchmarks.cpu_overhead                 # ~1-2 minutes on 2 cores
    .venv/bin/python -m benchmarks.cpu_overhead --profile       # + ~2 minutes
"""

from __future__ import annotations

import argparse
import collections
import importlib
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from consumer.local.processes import ManagedProcess

# benchmarks/ is not a package (no __init__.py), so mypy names benchmarks/common.py `common`
# while Python, running `-m benchmarks.cpu_overhead`, imports it as `benchmarks.common`.
if TYPE_CHECKING:
    import common
else:
    common = importlib.import_module("benchmarks.common")

PY_SPY = Path(sys.executable).with_name("py-spy")
RUN_TIMEOUT_S = 300.0
PROFILE_REPEAT = 3  # the profiled worker must stay busy for the whole py-spy recording
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

    def __init__(self, bench: common.Bench, requests: int) -> None:
        self.bench = bench
        self.requests = requests
        self.bootstrap = bench.broker()
        self.broker_pid = common.java_child_pid()
        self.file = bench.work / "requests.jsonl"
        lines = common.synth(requests, self.file)
        self.request_bytes = sum(map(len, lines)) / len(lines)
        self.topic = "bench.cpu.requests"
        common.Topics.fresh(self.topic, "setup").create(self.bootstrap)
        common.publish(self.bootstrap, self.topic, self.file)
        self.result_bytes: int | None = None  # the first worker case's mean result size
        self._repeated_published = False

    def measure(self, case: Case, url: str, engine_pid: int) -> dict[str, Any]:
        """Runs one case over the whole backlog."""
        topics = common.Topics.fresh(self.topic, case.name)
        topics.create(self.bootstrap)
        is_worker = case.worker_options is not None
        reader = common.ResultReader(self.bootstrap, topics.results, timings=is_worker)
        load_before = common.load_average()
        process = self._start(case, topics, url)
        tracer = common.Tracer(self._pids(process.pid, engine_pid))
        tracer.sample(0)
        if not is_worker:
            process.signal(signal.SIGUSR1)  # start-up is over and measured: go
        try:
            complete = common.drive(reader, self.requests, tracer, process.alive, RUN_TIMEOUT_S)
        finally:
            exit_code = process.stop()
            reader.close()
        n = len(reader)
        span = (int(0.1 * n), int(0.9 * n)) if is_worker else (0, n)
        out = summary(case, reader, tracer, span) | {
            "complete": complete,
            "exit_code": exit_code,
            "load_average": [load_before, common.load_average()],
        }
        if is_worker and reader.value_bytes and self.result_bytes is None:
            self.result_bytes = round(reader.value_bytes / n)
        return out

    def idle(self, url: str, seconds: float = 10.0) -> dict[str, Any]:
        """A worker's CPU use with nothing to do (an empty requests topic), once it has joined."""
        topics = common.Topics.fresh(f"bench.cpu.empty.{time.monotonic_ns()}", "idle")
        topics.create(self.bootstrap)
        worker = self.bench.worker(topics, url, "openai", *(CASES[0].worker_options or ()))
        try:
            deadline = time.monotonic() + 60
            while "assigned" not in self.bench.log(topics.group).read_text():
                if time.monotonic() > deadline or not worker.alive():
                    return {}
                time.sleep(0.2)
            before = common.process_cpu_s(worker.pid)
            time.sleep(seconds)
            used = common.process_cpu_s(worker.pid) - before
        finally:
            worker.stop()
        return {"seconds": seconds, "cpu_s": used, "cores_used": used / seconds}

    def profile(
        self, case: Case, url: str, engine_pid: int, out: Path, seconds: float
    ) -> dict[str, Any]:
        """Runs a worker on the repeated backlog with py-spy attached for ``seconds``."""
        topics = common.Topics.fresh(self._repeated_topic(), case.name)
        topics.create(self.bootstrap)
        reader = common.ResultReader(self.bootstrap, topics.results, timings=True)
        process = self._start(case, topics, url)
        tracer = common.Tracer(self._pids(process.pid, engine_pid))
        try:
            # Attached once the first result is out: imports and the group join are over.
            common.drive(reader, 1, tracer, process.alive, RUN_TIMEOUT_S)
            tracer.sample(reader.messages)
            spies = [self._spy(process.pid, out, seconds, f) for f in ("flamegraph", "raw")]
            while any(spy.alive() for spy in spies) and process.alive():
                reader.poll(0.25)
                tracer.sample(reader.messages)
            for spy in spies:
                spy.wait(60)
        finally:
            process.stop()
            reader.close()
        return summary(case, reader, tracer, (1, reader.messages))

    def _repeated_topic(self) -> str:
        topic = "bench.cpu.profile-requests"
        if not self._repeated_published:
            common.Topics.fresh(topic, "setup").create(self.bootstrap)
            for _ in range(PROFILE_REPEAT):
                common.publish(self.bootstrap, topic, self.file)
            self._repeated_published = True
        return topic

    def _pids(self, pid: int, engine_pid: int) -> dict[str, int]:
        pids = {"worker": pid, "engine": engine_pid}
        if self.broker_pid is not None:
            pids["broker"] = self.broker_pid
        return pids

    def _start(self, case: Case, topics: common.Topics, url: str) -> ManagedProcess:
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

    def _spy(self, pid: int, out: Path, seconds: float, fmt: str) -> ManagedProcess:
        path = out.with_suffix(".svg") if fmt == "flamegraph" else self.bench.work / "py-spy.raw"
        command = [str(PY_SPY), "record", "--pid", str(pid), "--rate", "100", "--nonblocking"]
        command += ["--duration", str(round(seconds)), "--format", fmt, "-o", str(path)]
        command += ["--threads"] if fmt == "raw" else []
        spy = ManagedProcess(command, log_path=self.bench.log(f"py-spy-{fmt}"))
        self.bench.process(spy).start()
        return spy


def summary(
    case: Case, reader: common.ResultReader, tracer: common.Tracer, span: tuple[int, int]
) -> dict[str, Any]:
    """Results, rates, latencies and CPU per request between two result counts."""
    n = len(reader)
    out: dict[str, Any] = {
        "case": case.name,
        "worker_options": list(case.worker_options or []),
        "results": n,
        "failed_results": reader.failed,
        "mean_result_bytes": round(reader.value_bytes / n) if n else None,
        "requests_per_s": common.rates(list(reader.times.values())),
        "first_result_after_s": next((s[0] for s in tracer.samples if s[1] > 0), None),
        "worker_cpu_s_total": tracer.samples[-1][2]["worker"],
        "latency_s": {
            name: {f"p{q}": common.percentile(values, q) for q in (50, 95)}
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


# Frames every stack of a thread passes through: their inclusive share says nothing.
_ENTRY_FRAMES = (
    "<frozen runpy>",
    "asyncio/runners.py",
    "asyncio/base_events.py",
    "asyncio/events.py",
    "threading.py",
    "consumer/__main__.py",
)


def summarize_profile(raw: Path, out: Path, label: str, top: int = 25) -> list[dict[str, Any]]:
    """Aggregates py-spy's collapsed stacks into ``out``; returns the rows it lists.

    Lists: samples per thread; the top functions by self samples; the project's own functions
    (``consumer/``) by inclusive samples; the rest by inclusive samples; self samples per
    module (a library by its top package). Shares are of all non-idle samples.
    """
    counters: dict[str, collections.Counter[str]] = {
        name: collections.Counter() for name in ("thread", "self", "project", "inclusive", "module")
    }
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = stack.split(";")
        count = int(count_text)
        total += count
        counters["thread"][frames[0].split(": ", 1)[-1]] += count  # "thread (tid): name"
        functions = [_function(f) for f in frames[1:]]
        if functions:
            counters["self"][functions[-1]] += count
            counters["module"][_module(functions[-1])] += count
        for function in set(functions):
            if not any(entry in function for entry in _ENTRY_FRAMES):
                kind = "project" if "(consumer/" in function else "inclusive"
                counters[kind][function] += count
    titles = {
        "thread": "by thread",
        "self": f"top {top} functions by self samples",
        "project": f"top {top} project functions (consumer/) by inclusive samples",
        "inclusive": f"top {top} library functions by inclusive samples",
        "module": "self samples by module (libraries by top package)",
    }
    lines = [f"py-spy record --rate 100 --nonblocking: {total} non-idle samples ({label})"]
    rows = []
    for kind, counter in counters.items():
        lines += ["", f"{titles[kind]}:"]
        for name, count in counter.most_common(top):
            lines.append(f"  {100 * count / total:5.1f}%  {count:6d}  {name}")
            rows.append({"by": kind, "name": name, "share": round(count / total, 4)})
    out.write_text("\n".join(lines) + "\n")
    return rows


def _function(frame: str) -> str:
    # "name (path/to/module.py:123)" -> "name (path/to/module.py)": lines of one function merge.
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if where else name


def _module(function: str) -> str:
    path = function.rpartition(" (")[2].rstrip(")").removesuffix(".py")
    parts = path.split("/")
    return ".".join(parts) if parts[0] == "consumer" else parts[0]


def print_table(rows: list[dict[str, Any]]) -> None:
    """One line per case."""
    print(
        f"\n{'case':<14}{'results':>8}{'req/s':>8}{'req/s':>8}{'idle':>6}{'worker':>8}"
        f"{'worker':>7}{'engine':>8}{'broker':>8}{'busy':>6}   load"
    )
    print(
        f"{'':<14}{'':>8}{'1st-last':>8}{'10-90%':>8}{'%':>6}{'us/req':>8}{'cores':>7}"
        f"{'us/req':>8}{'us/req':>8}{'%':>6}"
    )
    for row in rows:
        rate, cpu = row["requests_per_s"], row.get("cpu") or {}
        per, cores = cpu.get("us_per_request", {}), cpu.get("cores_used", {})
        idle = rate["idle_100ms_share"]
        print(
            f"{row['case']:<14}{row['results']:>8}{_num(rate['first_to_last']):>8}"
            f"{_num(rate['steady_10_90']):>8}{_num(idle and 100 * idle):>6}"
            f"{_num(per.get('worker')):>8}{_num(cores.get('worker'), 2):>7}"
            f"{_num(per.get('engine')):>8}{_num(per.get('broker')):>8}"
            f"{_num(100 * cpu.get('machine_busy_share', 0)):>6}   {row['load_average'][1][0]}"
        )


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def profile(
    bench: common.Bench, run: Run, seconds: float, url: str, engine_pid: int
) -> dict[str, Any]:
    """The two py-spy runs: instant engine (window 256) and vllm x10 (window 128)."""
    out: dict[str, Any] = {}
    vllm_url, vllm = bench.simulator("vllm", 10.0)
    runs = (
        ("cpu_profile", url, engine_pid, "instant engine, fixed window 256", "256"),
        ("cpu_profile_vllm", vllm_url, vllm.pid, "vllm x10, fixed window 128", "128"),
    )
    for name, engine_url, pid, label, window in runs:
        case = Case(f"profile-{window}", ("--window-policy", "fixed", "--window", window))
        target = common.RESULTS_DIR / name
        measured = run.profile(case, engine_url, pid, target, seconds)
        raw = bench.work / "py-spy.raw"
        top = summarize_profile(raw, target.with_suffix(".txt"), label) if raw.exists() else []
        if raw.exists():
            raw.rename(bench.work / f"{name}.raw")
        out[name] = {"label": label, "run": measured, "top": top}
        cpu = measured.get("cpu", {})
        print(
            f"  {label}: {_num(cpu.get('requests_per_s'))} req/s, worker "
            f"{_num(cpu.get('us_per_request', {}).get('worker'))} us/req, "
            f"{_num(cpu.get('cores_used', {}).get('worker'), 2)} cores; wrote "
            f"{target.with_suffix('.svg').name}, {target.with_suffix('.txt').name}",
            flush=True,
        )
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["passthrough"]:
        return passthrough(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--profile", action="store_true", help="also record py-spy profiles")
    parser.add_argument("--profile-seconds", type=float, default=20.0)
    parser.add_argument("--output", type=Path, default=common.RESULTS_DIR / "cpu_overhead.json")
    args = parser.parse_args(argv)
    if args.profile and not PY_SPY.exists():
        parser.error(f"--profile needs py-spy at {PY_SPY} (pip install py-spy)")
    report: dict[str, Any] = {"machine": common.machine(), "requests": args.requests}
    print(f"{os.cpu_count()} CPUs, {report['machine']['cpu_model']}, load {common.load_average()}")
    started = time.monotonic()
    with common.Bench("cpu") as bench:
        run = Run(bench, args.requests)
        url, engine = bench.simulator("instant")
        engine_pid = engine.pid
        report["mean_request_bytes"] = round(run.request_bytes)
        # Not compared: the broker's JIT and the page cache start cold.
        report["warm_up"] = run.measure(Case("warm-up", None), url, engine_pid)
        rows = []
        for case in CASES:
            rows.append(run.measure(case, url, engine_pid))
            print(f"  {case.name}: {rows[-1]['results']} results", flush=True)
        report["cases"] = rows
        report["idle_worker"] = run.idle(url)
        if args.profile:
            report["profiles"] = profile(bench, run, args.profile_seconds, url, engine_pid)
    report["wall_seconds"] = round(time.monotonic() - started, 1)
    report["load_average_at_end"] = common.load_average()
    print_table(rows)
    idle = report["idle_worker"].get("cores_used")
    print(f"a worker with nothing to do uses {_num(idle, 3)} cores (idle loops)")
    common.write_json(args.output, report)
    print(f"\nwrote {args.output} ({report['wall_seconds']} s); logs in {bench.work}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # everything started is stopped by then
        sys.exit(130)
