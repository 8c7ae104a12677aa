"""The result cache on a re-sent import: the same requests twice, the second time free.

One run publishes ``--requests`` synthetic requests (``producer synth --seed 7``), lets one
worker with the cache on evaluate them (pass 1), then publishes the same requests again under
new ids (an import run again) and lets the worker answer them (pass 2). A second run does the
same with the worker stopped and a fresh one started between the passes (the cache must come
back from its topic). Per pass: results, seconds from the moment its requests were all
published to its last result, results/s, and the engine calls the simulator counted; then pass
2 ÷ pass 1. The engine is the simulator's ``vllm`` profile, so pass 1's rate is an engine's.

    .venv/bin/python -m benchmarks.cache_passes          # ~2 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import harness
    import reporting
    import sampling
else:  # benchmarks/ is not a package: mypy and python name these modules differently
    harness = importlib.import_module("benchmarks.harness")
    reporting = importlib.import_module("benchmarks.reporting")
    sampling = importlib.import_module("benchmarks.sampling")

TIME_SCALE = 4.0


def again(lines: list[bytes], path: Path) -> None:
    """The same requests under new ids (``again-<id>``), written to ``path``."""
    with path.open("wb") as out:
        for line in lines:
            request = json.loads(line)
            request["id"] = f"again-{request['id']}"
            out.write(json.dumps(request).encode() + b"\n")


def wait_for(reader: Any, count: int, timeout: float) -> float:
    """Reads until ``count`` distinct results are in; returns when (monotonic seconds)."""
    deadline = time.monotonic() + timeout
    while len(reader) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(reader)} of {count} results in {timeout:.0f} s")
        reader.poll(0.2)
    return time.monotonic()


def one_run(bench: Any, files: tuple[Path, Path], count: int, restart: bool) -> dict[str, Any]:
    """Both passes of one run; ``restart`` starts a fresh worker between them."""
    url, _sim = bench.simulator("vllm", TIME_SCALE)
    topics = harness.Topics.fresh(f"bench.cache.{uuid.uuid4().hex[:6]}.requests", "cache")
    topics.create(bench.bootstrap)
    options = ("--cache",)
    cache_topic = {"EVALSTREAM_CACHE__TOPIC": f"bench.cache.{uuid.uuid4().hex[:8]}"}
    reader = sampling.ResultReader(bench.bootstrap, topics.results)
    passes = []
    worker = None
    for number, path in enumerate(files, start=1):
        harness.publish(bench.bootstrap, topics.requests, path)
        calls = harness.simulator_stats(url)["completed"]
        started = time.monotonic()
        if worker is None or (restart and number == 2):
            if worker is not None:
                worker.stop()
            worker = bench.worker_with_env(topics, url, "openai", cache_topic, *options)
        done = wait_for(reader, number * count, 600)
        passes.append(
            {
                "pass": number,
                "results": count,
                "seconds": done - started,
                "results_per_s": count / (done - started),
                "engine_calls": harness.simulator_stats(url)["completed"] - calls,
            }
        )
    reader.close()
    return {
        "restart_between_passes": restart,
        "passes": passes,
        "second_over_first": passes[1]["results_per_s"] / passes[0]["results_per_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--output", type=Path, default=reporting.RESULTS_DIR / "cache_passes.json")
    args = parser.parse_args()
    report: dict[str, Any] = {"machine": reporting.machine(), "requests": args.requests}
    with harness.Bench("cache") as bench:
        bench.broker()
        first = bench.work / "requests.jsonl"
        lines = harness.synth(args.requests, first)
        second = bench.work / "again.jsonl"
        again(lines, second)
        report["runs"] = [one_run(bench, (first, second), args.requests, r) for r in (False, True)]
    args.output.write_text(json.dumps(report, indent=1) + "\n")
    for run in report["runs"]:
        print(json.dumps(run))


if __name__ == "__main__":
    main()
