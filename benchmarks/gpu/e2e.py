"""One end-to-end run: requests through Kafka, our worker, vLLM, and results back through Kafka.

Steps (each run uses its own topics and consumer group, so runs never see each other's data):
1. reset vLLM's prefix cache (the same prompts may have been served by an earlier phase);
2. create the topics; publish the first ``--count`` lines of ``--requests`` with
   ``evalstream-producer publish`` (a backlog, as when a day's applications arrive at once);
3. start ``evalstream-consumer`` and read the results topic until every request has a result,
   sampling the worker's and vLLM's metrics every 2 s; throughput (from the worker's start and
   from first to last result), latency, token counts and engine calls per result;
4. run ``evalstream-producer collect --expect N`` over the results, stop the worker (SIGTERM);
5. count the dead letters and write everything to ``--out-json``.

Result times are the results' Kafka timestamps (set when the worker produced them), so native
results and OpenAI batch output lines are timed alike.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from benchlib import (
    histogram_quantiles,
    http_post,
    http_text,
    metric_sums,
    read_json,
    summary,
    write_json,
)
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from consumer.local.topics import create_topics

SAMPLE_EVERY_S = 2.0
WORKER_GAUGES = (
    "evalstream_window_limit_requests",
    "evalstream_in_flight_requests",
    "evalstream_buffered_requests",
    "evalstream_paused_partitions",
)
VLLM_GAUGES = ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc")
VLLM_COUNTERS = (
    "vllm:prefix_cache_queries_total",
    "vllm:prefix_cache_hits_total",
    "vllm:num_preemptions_total",
    "vllm:prompt_tokens_total",
    "vllm:generation_tokens_total",
    "vllm:request_success_total",
)
WORKER_HISTOGRAMS = (
    "evalstream_end_to_end_latency_seconds",
    "evalstream_engine_latency_seconds",
    "evalstream_queue_wait_seconds",
    "evalstream_batch_size_requests",
)


def run(command: list[str], log: Path, timeout: float) -> int:
    """Runs a command to completion, appending its output to ``log``."""
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(command)}\n".encode())
        out.flush()
        try:
            return subprocess.run(
                command, stdout=out, stderr=subprocess.STDOUT, timeout=timeout
            ).returncode
        except subprocess.TimeoutExpired:
            return 124


def reset_prefix_cache(engine: str) -> str:
    """Empties vLLM's prefix cache (needs VLLM_SERVER_DEV_MODE=1); retries while requests run."""
    for _ in range(10):
        status, body = http_post(f"{engine}/reset_prefix_cache")
        if status != 200:
            return f"http {status}"  # not a vLLM in dev mode (the simulator, say): nothing to reset
        if '"success":true' in body.replace(" ", ""):
            return "reset"
        time.sleep(1.0)
    return "not reset: blocks still in use"


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


def describe(result: dict[str, Any]) -> dict[str, Any]:
    """Status, usage and timings of one result, native or OpenAI batch output line."""
    if "custom_id" in result:
        response = result.get("response") or {}
        body = response.get("body") or {}
        usage = body.get("usage") or {}
        ok = result.get("error") is None and response.get("status_code") == 200
        return {"ok": ok, "usage": usage, "timings": None, "attempts": None}
    return {
        "ok": result.get("status") == "ok",
        "usage": result.get("usage") or {},
        "timings": result.get("timings"),
        "attempts": result.get("attempts"),
        "completed_at": result.get("completed_at"),
        "error": (result.get("error") or {}).get("reason"),
    }


def statistics(
    reader: ResultReader, started: float, expected_lengths: dict[str, int]
) -> dict[str, Any]:
    """Throughput, latency and token statistics of the results read."""
    times = sorted(t for t, _ in reader.results.values())
    described = {k: describe(v) for k, (_, v) in reader.results.items()}
    n = len(times)
    out: dict[str, Any] = {"results": n}
    if n == 0:
        return out
    first, last = times[0], times[-1]
    ten, ninety = times[int(0.1 * (n - 1))], times[int(0.9 * (n - 1))]
    completion = sum(float(d["usage"].get("completion_tokens") or 0) for d in described.values())
    prompt = sum(float(d["usage"].get("prompt_tokens") or 0) for d in described.values())
    out |= {
        "ok": sum(1 for d in described.values() if d["ok"]),
        "first_result_after_s": first - started,
        "wall_from_start_s": last - started,
        "requests_per_s_from_start": n / (last - started),
        "requests_per_s_first_to_last": (n - 1) / (last - first) if last > first else None,
        "requests_per_s_steady_10_90": 0.8 * (n - 1) / (ninety - ten) if ninety > ten else None,
        "output_tokens_per_s_from_start": completion / (last - started),
        "output_tokens_per_s_first_to_last": completion / (last - first) if last > first else None,
        "completion_tokens": summary(
            [float(d["usage"].get("completion_tokens") or 0) for d in described.values()]
        ),
        "prompt_tokens_total": prompt,
    }
    mismatched = [
        k
        for k, d in described.items()
        if k in expected_lengths
        and d["usage"].get("prompt_tokens") not in (None, expected_lengths[k])
    ]
    out["prompt_tokens_mismatch"] = {"count": len(mismatched), "examples": mismatched[:5]}
    errors: dict[str, int] = {}
    for d in described.values():
        if not d["ok"]:
            reason = str(d.get("error") or "batch_error")
            errors[reason] = errors.get(reason, 0) + 1
    out["errors"] = errors
    timings = [d["timings"] for d in described.values() if d["timings"]]
    if timings:
        out["latency_s"] = {
            key: summary([float(t[key]) for t in timings])
            for key in ("end_to_end_s", "inference_s", "queued_s")
        }
        attempts = [int(d["attempts"] or 1) for d in described.values() if d["timings"]]
        out["engine_calls_per_result"] = sum(attempts) / len(attempts)
    return out


def consumer_command(args: argparse.Namespace, topics: dict[str, str]) -> list[str]:
    """The worker's command line (the flags of the CLI contract)."""
    command = [sys.executable, "-m", "consumer"]
    command += ["--bootstrap-servers", args.bootstrap, "--group", topics["group"]]
    command += ["--requests-topic", topics["requests"], "--results-topic", topics["results"]]
    command += ["--dlq-topic", topics["dlq"], "--backend", "openai"]
    command += ["--engine-url", args.engine, "--model", args.model]
    command += ["--metrics-port", str(args.metrics_port)]
    command += ["--window-policy", args.window_policy, "--window", str(args.window)]
    if args.window_max:
        command += ["--window-max", str(args.window_max)]
    return command


def consumer_env(args: argparse.Namespace) -> dict[str, str]:
    """Engine settings that have no flag travel as EVALSTREAM_* variables."""
    env = dict(os.environ)
    env["EVALSTREAM_ENGINE__STRUCTURED_OUTPUT"] = "true" if args.structured_output else "false"
    env["EVALSTREAM_ENGINE__EXTRA_BODY"] = args.extra_body
    env["EVALSTREAM_ENGINE__MAX_TOKENS"] = str(args.max_tokens)
    env["EVALSTREAM_ENGINE__TEMPERATURE"] = str(args.temperature)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def sample(args: argparse.Namespace, series: dict[str, list[float]]) -> None:
    """One sample of the worker's window gauges and vLLM's queue gauges."""
    worker = metric_sums(http_text(f"http://127.0.0.1:{args.metrics_port}/metrics", 2.0))
    engine = metric_sums(http_text(f"{args.engine}/metrics", 2.0), "vllm:")
    for name in WORKER_GAUGES:
        if name in worker:
            series.setdefault(name, []).append(worker[name])
    for name in VLLM_GAUGES:
        if name in engine:
            series.setdefault(name, []).append(engine[name])


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--name", required=True)
    p.add_argument("--requests", type=Path, required=True, help="JSONL from workload.py")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--bootstrap", default="127.0.0.1:9092")
    p.add_argument("--engine", default="http://127.0.0.1:8000")
    p.add_argument("--model", default="gemma3-1b")
    p.add_argument("--partitions", type=int, default=8)
    p.add_argument("--window-policy", choices=["adaptive", "fixed"], default="adaptive")
    p.add_argument("--window", type=int, default=32)
    p.add_argument("--window-max", type=int)
    p.add_argument("--structured-output", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--extra-body", default="{}", help="EVALSTREAM_ENGINE__EXTRA_BODY")
    p.add_argument("--max-tokens", type=int, default=512)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--metrics-port", type=int, default=9400)
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for results")
    p.add_argument("--lengths", type=Path, help="prompt-lengths.json from workload.py")
    p.add_argument("--work-dir", type=Path, required=True)
    p.add_argument("--out-json", type=Path, required=True)
    return p.parse_args()


class E2ERun:
    """One run; the methods are its steps, in order."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = args.work_dir / args.name
        self.work.mkdir(parents=True, exist_ok=True)
        self.log = self.work / "e2e.log"
        stamp = f"bench.{args.name}.{datetime.now():%H%M%S}"
        self.topics = {
            "requests": f"{stamp}.requests",
            "results": f"{stamp}.results",
            "dlq": f"{stamp}.dlq",
            "group": stamp,
        }
        self.out: dict[str, Any] = {"name": args.name, "topics": self.topics}
        self.out["args"] = vars(args) | {"requests": str(args.requests)}

    def prepare(self) -> None:
        """1-2. Empty the prefix cache, create the topics, publish the backlog."""
        args = self.args
        self.out["prefix_cache"] = reset_prefix_cache(args.engine)
        partitions = {self.topics["requests"]: args.partitions, self.topics["dlq"]: 1}
        partitions[self.topics["results"]] = args.partitions
        create_topics(args.bootstrap, partitions)
        subset = self.work / "requests.jsonl"
        with args.requests.open() as src, subset.open("w") as dst:
            dst.writelines(line for _, line in zip(range(args.count), src, strict=False))
        t0 = time.time()
        publish = [sys.executable, "-m", "producer", "publish", str(subset), "--no-progress"]
        publish += ["--bootstrap-servers", args.bootstrap, "--topic", self.topics["requests"]]
        self.out["publish_rc"] = run(publish, self.log, 120)
        self.out["publish_s"] = time.time() - t0
        if self.out["publish_rc"] != 0:
            write_json(args.out_json, self.out)
            raise SystemExit(f"publish failed, see {self.log}")

    def drive(self) -> subprocess.Popen[bytes]:
        """3. Start the worker; read results until all are in (or time is up); sample gauges."""
        args = self.args
        engine_before = metric_sums(http_text(f"{args.engine}/metrics"), "vllm:")
        reader = ResultReader(args.bootstrap, self.topics["results"], args.partitions)
        started = time.time()
        with (self.work / "worker.log").open("ab") as worker_log:
            worker = subprocess.Popen(
                consumer_command(args, self.topics),
                env=consumer_env(args),
                stdout=worker_log,
                stderr=subprocess.STDOUT,
            )
        series: dict[str, list[float]] = {}
        next_sample, deadline = started, started + args.timeout
        while len(reader.results) < args.count and time.time() < deadline and worker.poll() is None:
            reader.poll(0.5)
            if time.time() >= next_sample:
                sample(args, series)
                next_sample += SAMPLE_EVERY_S
        self.out["worker_exit_early"] = worker.poll()
        self.out["timed_out"] = len(reader.results) < args.count
        worker_metrics = http_text(f"http://127.0.0.1:{args.metrics_port}/metrics")
        engine_after = metric_sums(http_text(f"{args.engine}/metrics"), "vllm:")
        lengths = read_json(args.lengths) if args.lengths else None
        self.out["stats"] = statistics(reader, started, lengths or {})
        self.out["results_read"] = len(reader.results)
        reader.close()
        self.out["sampled"] = {name: summary(values) for name, values in series.items()}
        self.out["worker_histograms"] = {
            name: histogram_quantiles(worker_metrics, name) for name in WORKER_HISTOGRAMS
        }
        self.out["vllm_counters_delta"] = counter_delta(engine_before, engine_after)
        return worker

    def finish(self, worker: subprocess.Popen[bytes]) -> None:
        """4-5. The contract's collector over the results, a clean stop, the dead letters."""
        args, out = self.args, self.out
        collect = [sys.executable, "-m", "producer", "collect"]
        collect += ["--bootstrap-servers", args.bootstrap, "--topic", self.topics["results"]]
        collect += ["--out", str(self.work / "results.jsonl"), "--from-beginning"]
        collect += ["--expect", str(out["results_read"] or 1), "--no-progress"]
        collect += ["--json-summary", str(self.work / "collect.json")]
        out["collect_rc"] = run(collect, self.log, 60)
        out["collect_summary"] = read_json(self.work / "collect.json")
        worker.send_signal(signal.SIGTERM)
        try:
            out["worker_rc"] = worker.wait(40)
        except subprocess.TimeoutExpired:
            worker.kill()
            out["worker_rc"] = "killed"
        out["dead_letters"] = dead_letters(args.bootstrap, self.topics["dlq"])
        write_json(args.out_json, out)


def counter_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float | None]:
    """vLLM's counters over the run, and the prefix-cache hit share they imply."""
    delta: dict[str, float | None] = {}
    for name in VLLM_COUNTERS:
        delta[name] = after.get(name, 0.0) - before.get(name, 0.0)
    queries = after.get(VLLM_COUNTERS[0], 0.0) - before.get(VLLM_COUNTERS[0], 0.0)
    hits = after.get(VLLM_COUNTERS[1], 0.0) - before.get(VLLM_COUNTERS[1], 0.0)
    delta["prefix_cache_hit_share"] = hits / queries if queries else None
    return delta


def main() -> None:
    e2e = E2ERun(parse_args())
    e2e.prepare()
    worker = e2e.drive()
    e2e.finish(worker)
    print(json.dumps(e2e.out["stats"], indent=1, default=str))


if __name__ == "__main__":
    main()
