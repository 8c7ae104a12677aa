"""One end-to-end run: requests through Kafka, our worker(s), vLLM, and results back through Kafka.

Steps (each run uses its own topics and consumer group, so runs never see each other's data):
1. reset vLLM's prefix cache (the same prompts may have been served by an earlier phase);
2. create the topics; publish the first ``--count`` lines of ``--requests`` with
   ``evalstream-producer publish`` (a backlog, as when a day's applications arrive at once);
3. start ``evalstream-consumer`` and read the results topic until every request has a result,
   sampling the worker's and vLLM's metrics every 2 s; throughput (from the worker's start and
   from first to last result), latency, token counts and engine calls per result;
4. run ``evalstream-producer collect --expect N`` over the results, stop the worker (SIGTERM);
5. count the dead letters and write everything to ``--out-json``.

``--engine`` may be given more than once: one worker per engine, all in ONE consumer group on
the same topics (worker i drives engine i, with its own worker id, ``--gpu i`` and metrics port
``--metrics-port`` + i). The sampled gauges and the histograms are then sums over the workers
(and the engines), with each worker's and engine's own series beside them; ``workers`` records
what each one consumed and completed and how many partitions it held.

``--backend ollama`` runs the worker against an Ollama server instead (``--engine`` its URL,
``--model`` the name it serves the model under); vLLM's prefix-cache reset and gauges are then
absent (recorded as ``http 404`` and no samples).

Result times are the results' Kafka timestamps (set when the worker produced them), so native
results and OpenAI batch output lines are timed alike.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from benchlib import histogram_quantiles, read_json, summary, write_json
from e2e_records import (
    ResultReader,
    backlog_ready,
    dead_letters,
    result_times_path,
    window_moves,
    write_result_times,
)
from e2e_workers import (
    DEFAULT_ENGINE,
    SAMPLE_EVERY_S,
    WORKER_HISTOGRAMS,
    consumer_command,
    consumer_env,
    sample,
    worker_counts,
    worker_specs,
    worker_texts,
)
from measure import add_up, counter_delta, engine_metrics, reset_prefix_cache, statistics
from provenance import provenance

from evalstream_local.topics import create_topics


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


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--name", required=True)
    p.add_argument("--requests", type=Path, required=True, help="JSONL from workload.py")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--bootstrap", default="127.0.0.1:9092")
    p.add_argument(
        "--engine", action="append", help=f"repeatable: one worker per engine ({DEFAULT_ENGINE})"
    )
    p.add_argument("--model", default="gemma3-1b")
    p.add_argument(
        "--backend", choices=["openai", "ollama"], default="openai", help="the worker's backend"
    )
    p.add_argument("--partitions", type=int, default=12, help="12: 1, 2, 3, 4 or 6 workers even")
    p.add_argument(
        "--one-gpu", action="store_true", help="the engines share GPU 0 (the workers' --gpu 0)"
    )
    p.add_argument("--window-policy", choices=["adaptive", "fixed"], help="worker's default")
    p.add_argument("--window", type=int, help="worker's default")
    p.add_argument("--window-max", type=int)
    p.add_argument("--structured-output", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--extra-body", default="{}", help="EVALSTREAM_ENGINE__EXTRA_BODY")
    p.add_argument("--max-tokens", type=int, help="worker's default (the schema's bound)")
    p.add_argument(
        "--string-bounds",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the schema's string lengths in the engine's grammar (engine.string_bounds)",
    )
    p.add_argument("--temperature", type=float, help="worker's default (0)")
    p.add_argument("--metrics-port", type=int, default=9400, help="worker i uses this + i")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for results")
    p.add_argument("--lengths", type=Path, help="prompt-lengths.json from workload.py")
    p.add_argument("--work-dir", type=Path, required=True)
    p.add_argument("--out-json", type=Path, required=True)
    return p.parse_args()


class E2ERun:
    """One run; the methods are its steps, in order."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.specs = worker_specs(args)
        self.engines = [s["engine"] for s in self.specs]
        self.work = args.work_dir / args.name
        self.work.mkdir(parents=True, exist_ok=True)
        self.log = self.work / "e2e.log"
        stamp = f"bench.{args.name}.{datetime.now():%H%M%S}"
        # One backlog per requests file and count, published once and read by every run from
        # the beginning with its own group: runs differ only in the worker's settings.
        backlog = f"bench.backlog.{args.requests.stem}.{args.count}.p{args.partitions}"
        self.topics = {
            "requests": backlog,
            "results": f"{stamp}.results",
            "dlq": f"{stamp}.dlq",
            "group": stamp,
        }
        self.out: dict[str, Any] = {"name": args.name, "topics": self.topics}
        self.out["provenance"] = provenance()
        self.out["args"] = vars(args) | {"requests": str(args.requests)}
        self.out["engines"] = self.engines
        self.workers: list[subprocess.Popen[bytes]] = []

    def prepare(self) -> None:
        """1-2. Empty the prefix caches, create the topics, publish the backlog."""
        args = self.args
        resets = [reset_prefix_cache(engine) for engine in self.engines]
        self.out["prefix_cache"] = resets[0] if len(resets) == 1 else resets
        if backlog_ready(args.bootstrap, self.topics["requests"], args.count):
            self.out["publish_rc"], self.out["publish_s"] = 0, 0.0  # published by an earlier run
            create_topics(args.bootstrap, {self.topics["results"]: args.partitions})
            create_topics(args.bootstrap, {self.topics["dlq"]: 1})
            return
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

    def start_workers(self) -> None:
        """3a. One worker per engine, all at once (one consumer group)."""
        env = consumer_env(self.args)
        for i, spec in enumerate(self.specs):
            name = "worker.log" if len(self.specs) == 1 else f"worker-{i}.log"
            with (self.work / name).open("ab") as worker_log:
                self.workers.append(
                    subprocess.Popen(
                        consumer_command(self.args, self.topics, spec),
                        env=env,
                        stdout=worker_log,
                        stderr=subprocess.STDOUT,
                    )
                )

    def drive(self) -> None:
        """3. Start the workers; read results until all are in (or time is up); sample gauges."""
        args = self.args
        engine_before = add_up(engine_metrics(self.engines))
        reader = ResultReader(args.bootstrap, self.topics["results"], args.partitions)
        started = time.time()
        self.start_workers()
        series: dict[str, list[float]] = {}
        next_sample, deadline = started, started + args.timeout
        while (
            len(reader.results) < args.count
            and time.time() < deadline
            and all(w.poll() is None for w in self.workers)
        ):
            reader.poll(0.5)
            if time.time() >= next_sample:
                sample(self.specs, series)
                next_sample += SAMPLE_EVERY_S
        texts = worker_texts(self.specs)
        engine_after = add_up(engine_metrics(self.engines))
        lengths = read_json(args.lengths) if args.lengths else None
        self.out["stats"] = statistics(reader.results, started, lengths or {})
        self.out["results_read"] = len(reader.results)
        self.out["started_at"] = started
        write_result_times(reader.results, started, result_times_path(args.out_json))
        reader.close()
        self.record(texts, series)
        self.out["vllm_counters_delta"] = counter_delta(engine_before, engine_after)

    def record(self, texts: list[str | None], series: dict[str, list[float]]) -> None:
        """The workers' histograms (summed over the workers), counts and sampled series."""
        out, joined = self.out, "\n".join(t or "" for t in texts)
        rcs = [w.poll() for w in self.workers]
        out["worker_exit_early"] = rcs[0] if len(rcs) == 1 else rcs
        out["timed_out"] = out["results_read"] < self.args.count
        out["sampled"] = {name: summary(values) for name, values in series.items()}
        out["worker_histograms"] = {
            name: histogram_quantiles(joined, name) for name in WORKER_HISTOGRAMS
        }
        workers = [worker_counts(s, t, rc) for s, t, rc in zip(self.specs, texts, rcs, strict=True)]
        out["workers"] = workers
        completed = sum(w["evalstream_completed_total"] or 0 for w in workers)
        # Results the workers published that the reader had not read when the run stopped
        # (lag, not duplicates: duplicates are counted by the collector, below).
        out["completed_sum_over_workers"] = completed
        out["completed_not_read"] = completed - out["results_read"]
        out["window_moves"] = window_moves(self.work)

    def finish(self) -> None:
        """4-5. The contract's collector over the results, a clean stop, the dead letters."""
        args, out = self.args, self.out
        collect = [sys.executable, "-m", "producer", "collect"]
        collect += ["--bootstrap-servers", args.bootstrap, "--topic", self.topics["results"]]
        collect += ["--dlq-topic", self.topics["dlq"]]
        collect += ["--out", str(self.work / "results.jsonl"), "--from-beginning"]
        collect += ["--expect", str(out["results_read"] or 1), "--no-progress"]
        collect += ["--json-summary", str(self.work / "collect.json")]
        out["collect_rc"] = run(collect, self.log, 60)
        out["collect_summary"] = read_json(self.work / "collect.json")
        out["worker_rc"] = self.stop_workers()
        out["dead_letters"] = dead_letters(args.bootstrap, self.topics["dlq"])
        write_json(args.out_json, out)

    def stop_workers(self) -> int | str | list[int | str]:
        """SIGTERM to every worker, then their exit codes ("killed" after 40 s)."""
        for worker in self.workers:
            worker.send_signal(signal.SIGTERM)
        codes: list[int | str] = []
        for worker in self.workers:
            try:
                codes.append(worker.wait(40))
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
                codes.append("killed")
        return codes[0] if len(codes) == 1 else codes


def main() -> None:
    e2e = E2ERun(parse_args())
    e2e.prepare()
    try:
        e2e.drive()
    except BaseException:
        e2e.stop_workers()  # no worker outlives a failed run
        raise
    e2e.finish()
    print(json.dumps(e2e.out["stats"], indent=1, default=str))


if __name__ == "__main__":
    main()
