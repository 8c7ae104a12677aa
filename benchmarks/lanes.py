"""The interactive lane under a bulk backlog the run cannot finish, on the engine simulator.

One run, one machine, three phases against the simulator's ``vllm`` profile, each worker on
its defaults (adaptive window) plus what the phase names:

1. **idle**: a worker with the interactive lane, no bulk work; one interactive request a
   second for ``--interactive`` seconds. Their end-to-end latency is the reference.
2. **lane**: the same worker, a bulk backlog of ``--backlog`` requests (more than the run can
   finish) published first; after ``--warmup`` s, one interactive request a second again.
   Interactive latency p50/p95 ÷ idle, and bulk results/s over the same seconds.
   Phases 1 and 2 run once per entry of ``VARIANTS`` (the lane's defaults, and a bulk limit).
3. **no lane**: a fresh worker without the lane and a fresh backlog of the same size; bulk
   results/s over the same seconds after the same warm-up: the lane's cost to the bulk.

Latency is the result's ``timings.end_to_end_s`` (request timestamp to result produced).

    .venv/bin/python -m benchmarks.lanes           # ~7 minutes on 2 cores

With ``--engine-url`` (and ``--model``) the phases drive that running engine instead of a fresh
simulator each (a real vLLM on a GPU: ``benchmarks/gpu/README.md``); its prefix cache is reset
between phases where the server allows it. The variants that need the engine's priority
scheduling run only with ``--engine-priority`` (the engine was started with
``--scheduling-policy priority``), and are recorded as skipped otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import statistics
import time
import urllib.request
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from evalstream_local.topics import create_topics

if TYPE_CHECKING:
    import harness
    import reporting
else:  # benchmarks/ is not a package: mypy and python name these modules differently
    harness = importlib.import_module("benchmarks.harness")
    reporting = importlib.import_module("benchmarks.reporting")

TIME_SCALE = 1.0
LANE_PARTITIONS = 2
# Lane settings measured (worker environment, simulator options): the defaults, and bulk
# limits of 128 and 64 while the lane is active, with the engine's priority scheduling on.
VARIANTS: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {
    "defaults": ({}, ()),
    **{
        f"bulk_limit_{limit}": (
            {"EVALSTREAM_LANES__BULK_LIMIT": str(limit), "EVALSTREAM_LANES__ENGINE_PRIORITY": "-1"},
            ("--scheduling-policy", "priority"),
        )
        for limit in (128, 64)
    },
}


class Results:
    """Every result of one results topic: (request id, produced at, end-to-end seconds)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": f"{topic}.reader", "fetch.wait.max.ms": 50}
        )
        partitions = range(harness.PARTITIONS)
        self._consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        self.rows: dict[str, tuple[float, float]] = {}

    def poll(self, timeout: float) -> None:
        """Takes what arrived within ``timeout`` seconds (first result per id)."""
        for message in self._consumer.consume(num_messages=1000, timeout=timeout):
            if message.error() is not None or not message.value():
                continue
            result = json.loads(message.value() or b"{}")
            at = message.timestamp()[1] / 1000.0
            self.rows.setdefault(result["id"], (at, float(result["timings"]["end_to_end_s"])))

    def bulk_between(self, start: float, end: float) -> int:
        """Bulk results produced in [start, end) (epoch seconds)."""
        return sum(
            1 for i, (at, _) in self.rows.items() if i.startswith("req-") and start <= at < end
        )

    def close(self) -> None:
        self._consumer.close()


def send(bootstrap: str, topic: str, line: bytes, request_id: str) -> None:
    """Publishes one request under ``request_id`` and waits for the broker's ack."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    request = json.loads(line) | {"id": request_id}
    producer.produce(topic, json.dumps(request).encode(), key=request_id.encode())
    producer.flush(10)


def wait_for(results: Results, ids: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not all(i in results.rows for i in ids):
        if time.monotonic() > deadline:
            raise SystemExit(f"results missing: {[i for i in ids if i not in results.rows]}")
        results.poll(0.2)


def interactive(
    bootstrap: str, lane: str, results: Results, lines: list[bytes], tag: str
) -> list[float]:
    """Publishes one interactive request a second; returns their end-to-end latencies."""
    ids = []
    for i, line in enumerate(lines):
        ids.append(f"now-{tag}-{i}")
        send(bootstrap, lane, line, ids[-1])
        until = time.monotonic() + 1.0
        while time.monotonic() < until:
            results.poll(0.1)
    wait_for(results, ids, 120)
    return [results.rows[i][1] for i in ids]


def ready(bootstrap: str, topic: str, results: Results, line: bytes) -> None:
    """Waits until the worker answered one request: it joined and its engine is up."""
    send(bootstrap, topic, line, "warm-0")
    wait_for(results, ["warm-0"], 120)


def summary(latencies: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(latencies, n=20, method="inclusive")
    return {
        "count": len(latencies),
        "p50_s": statistics.median(latencies),
        "p95_s": cuts[18],
        "max_s": max(latencies),
    }


def read_until(results: Results, moment: float) -> None:
    """Reads results until the wall clock passes ``moment`` (epoch seconds)."""
    while time.time() < moment:
        results.poll(0.2)


def phase_topics(bench: Any, label: str, lane: bool) -> tuple[Any, str | None]:
    topics = harness.Topics.fresh(f"bench.lanes.{uuid.uuid4().hex[:6]}.requests", label)
    topics.create(bench.bootstrap)
    if not lane:
        return topics, None
    name = f"{topics.group}.interactive"
    create_topics(bench.bootstrap, {name: LANE_PARTITIONS})
    return topics, name


class Engine:
    """A fresh simulator per phase, or the one real engine of ``--engine-url``."""

    def __init__(self, bench: Any, args: argparse.Namespace) -> None:
        self._bench, self._args = bench, args

    def start(self, *options: str) -> tuple[str, Any]:
        """The engine's URL and what to stop afterwards (None for a real engine)."""
        if self._args.engine_url is None:
            url, sim = self._bench.simulator("vllm", TIME_SCALE, *options)
            return url, sim
        with contextlib.suppress(OSError):  # vLLM in dev mode only; elsewhere nothing to reset
            post = urllib.request.Request(f"{self._args.engine_url}/reset_prefix_cache", b"")
            urllib.request.urlopen(post, timeout=30).close()
        return self._args.engine_url, None

    def model(self) -> tuple[str, ...]:
        """The worker's extra options: the real engine's model name."""
        return () if self._args.model is None else ("--model", self._args.model)


def with_lane(
    bench: Any, args: argparse.Namespace, probes: list[bytes], variant: str
) -> dict[str, Any]:
    """The same worker idle, then under the backlog; ``variant`` names its lane settings."""
    env, engine = VARIANTS[variant]
    url, sim = args.engine.start(*engine)
    topics, lane = phase_topics(bench, "lane", lane=True)
    assert lane is not None
    results = Results(bench.bootstrap, topics.results)
    options = ("--interactive-topic", lane, *args.engine.model())
    worker = bench.worker_with_env(topics, url, "openai", env, *options)
    ready(bench.bootstrap, topics.requests, results, probes[0])
    idle = interactive(bench.bootstrap, lane, results, probes, "idle")
    harness.publish(bench.bootstrap, topics.requests, args.backlog_file)
    start = time.time() + args.warmup
    read_until(results, start)
    loaded = interactive(bench.bootstrap, lane, results, probes, "load")
    end = time.time()
    read_until(results, end + 2)  # results produced before ``end`` may arrive a bit later
    results.close()
    worker.stop()
    if sim is not None:
        sim.stop()
    return {
        "settings": env,
        "engine": list(engine),
        "idle": summary(idle),
        "load": summary(loaded),
        "bulk_results_per_s": results.bulk_between(start, end) / (end - start),
        "seconds": end - start,
    }


def without_lane(
    bench: Any, args: argparse.Namespace, probe: bytes, seconds: float
) -> dict[str, Any]:
    """Phase 3: a worker without the lane, the same backlog, the same warm-up and seconds."""
    url, sim = args.engine.start()
    topics, _ = phase_topics(bench, "nolane", lane=False)
    results = Results(bench.bootstrap, topics.results)
    worker = bench.worker(topics, url, "openai", *args.engine.model())
    ready(bench.bootstrap, topics.requests, results, probe)
    harness.publish(bench.bootstrap, topics.requests, args.backlog_file)
    start = time.time() + args.warmup
    end = start + seconds
    read_until(results, end + 2)
    results.close()
    worker.stop()
    if sim is not None:
        sim.stop()
    return {"bulk_results_per_s": results.bulk_between(start, end) / seconds, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backlog", type=int, default=6000)
    parser.add_argument("--interactive", type=int, default=30, help="seconds (one request each)")
    parser.add_argument("--warmup", type=float, default=20.0)
    parser.add_argument("--output", type=Path, default=reporting.RESULTS_DIR / "lanes.json")
    parser.add_argument("--engine-url", help="a running engine instead of the simulator")
    parser.add_argument("--model", help="the model name that engine serves")
    parser.add_argument(
        "--engine-priority",
        action="store_true",
        help="the engine runs --scheduling-policy priority (the bulk-limit variants need it)",
    )
    args = parser.parse_args()
    report: dict[str, Any] = {
        "machine": reporting.machine(),
        "backlog": args.backlog,
        "warmup_s": args.warmup,
        "time_scale": TIME_SCALE if args.engine_url is None else None,
        "engine": args.engine_url or "simulator (vllm profile)",
    }
    # A real engine's scheduling policy is fixed at its start: variants that need priority
    # scheduling run only when the operator says the engine has it.
    variants = [
        v for v in VARIANTS if args.engine_url is None or args.engine_priority or not VARIANTS[v][1]
    ]
    report["skipped_variants"] = [v for v in VARIANTS if v not in variants]
    with harness.Bench("lanes") as bench:
        bench.broker()
        args.engine = Engine(bench, args)
        args.backlog_file = bench.work / "backlog.jsonl"
        harness.synth(args.backlog, args.backlog_file)
        probes = harness.synth(args.interactive, bench.work / "probes.jsonl", seed=11)
        # Each phase has a fresh engine and worker: no prefix cache or window carried over.
        report["lanes"] = {v: with_lane(bench, args, probes, v) for v in variants}
        seconds = report["lanes"]["defaults"]["seconds"]
        report["no_lane"] = without_lane(bench, args, probes[0], seconds)
    for lane in report["lanes"].values():
        idle, load = lane["idle"], lane["load"]
        lane["ratios"] = {
            "interactive_p50_load_over_idle": load["p50_s"] / idle["p50_s"],
            "interactive_p95_load_over_idle": load["p95_s"] / idle["p95_s"],
            "bulk_with_lane_over_without": lane["bulk_results_per_s"]
            / report["no_lane"]["bulk_results_per_s"],
        }
    args.output.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: report[k] for k in ("lanes", "no_lane")}, indent=1))


if __name__ == "__main__":
    main()
