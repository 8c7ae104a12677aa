"""vLLM driven directly: no Kafka, no worker, but the worker's own HTTP client.

Tells where a gap between the end-to-end rate and ``vllm bench serve`` comes from: the engine's
chat endpoint (``chat`` here against ``completions`` here), the HTTP client (``completions``
here against ``vllm bench serve``, which streams through its own aiohttp session), or the Kafka
path and the worker (the e2e runs against ``chat`` here, which sends the very same bodies).

The client is ``consumer.__main__.http_client`` (httpx's API over aiohttp's pool), built from
the worker's settings with the window's maximum set to the concurrency; every call is one
non-streaming POST, its reply parsed as the worker parses it. Concurrency is fixed: a semaphore
is kept full, so a new request starts as soon as one finishes.

- ``chat``: the ``body`` of the first ``--count`` OpenAI batch lines of ``--requests``
  (``requests-noschema.jsonl``: the worker's messages, ``max_tokens``, ``ignore_eos``,
  temperature 1.0) to ``/v1/chat/completions``, with ``model`` set as the worker sets it;
- ``completions``: the first ``--count`` rows of ``serve-noschema.jsonl`` (``prompt``,
  ``output_tokens``) to ``/v1/completions`` as ``vllm bench serve`` sends them (``max_tokens``
  = ``output_tokens``, ``ignore_eos``, temperature 1.0, ``add_special_tokens`` false).

The prefix cache is reset first (a 404 from an engine without the route is recorded, not an
error). Written to ``--out-json``: requests/s and output tokens/s (from the replies' usage),
latency p50/p95, failures by kind, and the CPU seconds this process used (``getrusage``) in all
and per request.

Usage: direct.py --mode chat|completions --requests FILE --count N --concurrency C
                 --engine URL --model NAME --out-json OUT
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from pathlib import Path
from typing import Any

import httpx
from benchlib import summary, write_json
from measure import counter_delta, engine_metrics, reset_prefix_cache

from consumer.__main__ import http_client
from consumer.settings import load_settings

ENDPOINTS = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}


def load_bodies(mode: str, path: Path, count: int, model: str) -> list[dict[str, Any]]:
    """The request bodies of the first ``count`` lines of ``path``."""
    bodies: list[dict[str, Any]] = []
    with path.open() as lines:
        for line in lines:
            if len(bodies) >= count:
                break
            row = json.loads(line)
            if mode == "chat":
                bodies.append(dict(row["body"]) | {"model": model})
                continue
            bodies.append(
                {
                    "model": model,
                    "prompt": row["prompt"],
                    "max_tokens": row["output_tokens"],
                    "ignore_eos": True,
                    "temperature": 1.0,
                    "add_special_tokens": False,
                }
            )
    return bodies


async def call(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """One non-streaming call: latency, status, token usage or the error's kind."""
    start = time.perf_counter()
    try:
        response = await client.post(path, json=body)
    except httpx.HTTPError as exc:
        return {"latency_s": time.perf_counter() - start, "error": type(exc).__name__}
    latency = time.perf_counter() - start
    if response.status_code != 200:
        return {"latency_s": latency, "error": f"http {response.status_code}"}
    try:
        usage = response.json().get("usage") or {}
    except (ValueError, AttributeError):
        return {"latency_s": latency, "error": "reply not a JSON object"}
    return {
        "latency_s": latency,
        "completion_tokens": int(usage.get("completion_tokens") or 0),
        "prompt_tokens": int(usage.get("prompt_tokens") or 0),
    }


async def drive(
    client: httpx.AsyncClient,
    path: str,
    bodies: list[dict[str, Any]],
    concurrency: int,
    deadline: float,
) -> tuple[list[dict[str, Any]], bool]:
    """Every body at ``concurrency`` in flight; the calls done and whether time ran out first."""
    slots = asyncio.Semaphore(concurrency)
    tasks: list[asyncio.Task[dict[str, Any]]] = []
    for body in bodies:
        if time.perf_counter() >= deadline:
            break
        try:  # a free slot is taken at once; waiting for one is bounded by the deadline
            if slots.locked():
                await asyncio.wait_for(slots.acquire(), max(deadline - time.perf_counter(), 0))
            else:
                await slots.acquire()
        except TimeoutError:
            break
        task = asyncio.create_task(call(client, path, body))
        task.add_done_callback(lambda _: slots.release())
        tasks.append(task)
    left = max(deadline - time.perf_counter(), 0.001)
    done, pending = await asyncio.wait(tasks, timeout=left) if tasks else (set(), set())
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return [t.result() for t in tasks if t in done], bool(pending) or len(tasks) < len(bodies)


def cpu_seconds() -> float:
    """User plus system CPU seconds this process has used."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def timed_run(args: argparse.Namespace, bodies: list[dict[str, Any]]) -> dict[str, Any]:
    """Drives the engine with the worker's client; the calls, wall and CPU seconds."""
    settings = load_settings(
        None,
        engine={"url": args.engine, "model": args.model},
        window={"min": 1, "size": args.concurrency, "max": args.concurrency},
    )
    async with http_client(settings) as client:
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        calls, timed_out = await drive(
            client, ENDPOINTS[args.mode], bodies, args.concurrency, t0 + args.timeout
        )
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    return {
        "calls": calls,
        "timed_out": timed_out,
        "wall_s": wall,
        "cpu_s": cpu,
        "client": type(client).__name__,
    }


def figures(run: dict[str, Any]) -> dict[str, Any]:
    """Rates, latency, failures and client CPU of one timed run."""
    calls, wall = run["calls"], run["wall_s"]
    ok = [c for c in calls if "error" not in c]
    errors: dict[str, int] = {}
    for c in calls:
        if "error" in c:
            errors[c["error"]] = errors.get(c["error"], 0) + 1
    output = sum(c["completion_tokens"] for c in ok)
    latency = summary([c["latency_s"] for c in ok])
    return {
        "requests": len(calls),
        "ok": len(ok),
        "failed": len(calls) - len(ok),
        "errors": errors,
        "timed_out": run["timed_out"],
        "wall_s": wall,
        "requests_per_s": len(ok) / wall if wall else None,
        "output_tokens_per_s": output / wall if wall else None,
        "completion_tokens": summary([float(c["completion_tokens"]) for c in ok]),
        "prompt_tokens_total": sum(c["prompt_tokens"] for c in ok),
        "latency_s": latency,
        "client": run["client"],
        "client_cpu_s": run["cpu_s"],
        "client_cpu_ms_per_request": 1000 * run["cpu_s"] / len(calls) if calls else None,
    }


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--mode", choices=sorted(ENDPOINTS), required=True)
    p.add_argument("--requests", type=Path, required=True, help="requests- or serve-noschema")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--concurrency", type=int, required=True)
    p.add_argument("--engine", default="http://127.0.0.1:8000")
    p.add_argument("--model", default="gemma3-1b")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds before giving up")
    p.add_argument("--out-json", type=Path, required=True)
    return p.parse_args()


def main() -> None:
    args = parse_args()
    bodies = load_bodies(args.mode, args.requests, args.count, args.model)
    out: dict[str, Any] = {"mode": args.mode, "endpoint": ENDPOINTS[args.mode]}
    out |= {"engine": args.engine, "concurrency": args.concurrency, "count": len(bodies)}
    out["prefix_cache"] = reset_prefix_cache(args.engine)
    before = engine_metrics([args.engine])[0]
    out |= figures(asyncio.run(timed_run(args, bodies)))
    out["vllm_counters_delta"] = counter_delta(before, engine_metrics([args.engine])[0])
    write_json(args.out_json, out)
    keep = ("requests", "ok", "failed", "requests_per_s", "output_tokens_per_s")
    print(json.dumps({k: out[k] for k in keep} | {"cpu_ms": out["client_cpu_ms_per_request"]}))


if __name__ == "__main__":
    main()
