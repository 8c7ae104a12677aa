"""CPU per engine call of three HTTP clients, side by side, against the engine simulator.

The worker's cost per request is mostly its HTTP call; this measures that alone, in one
process and one run: httpx with its own pool, aiohttp, and the httpx API over aiohttp's pool.

Usage: ``.venv/bin/python -m benchmarks.http_clients [--requests N]``; writes
``benchmarks/results/http_clients.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import HttpxAiohttpClient

from evalstream_local.simulator.server import EngineSimulator

BODY: dict[str, Any] = {
    "model": "m",
    "messages": [
        {"role": "system", "content": "x" * 500},
        {"role": "user", "content": "y" * 8000},  # the size of a rendered candidate prompt
    ],
    "max_tokens": 200,
}
OUT = Path(__file__).parent / "results" / "http_clients.json"


async def measure(
    call: Callable[[], Awaitable[None]], n: int, concurrency: int
) -> dict[str, float]:
    """Requests/s and CPU microseconds per call for ``n`` calls at ``concurrency``."""
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await call()

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one() for _ in range(n)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"requests_per_s": round(n / wall, 1), "cpu_us_per_call": round(cpu / n * 1e6, 1)}


async def run(url: str, n: int, concurrency: int) -> dict[str, dict[str, float]]:
    limits = httpx.Limits(
        max_connections=concurrency + 16, max_keepalive_connections=concurrency + 16
    )
    results = {}
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def plain() -> None:
            (await client.post("/v1/chat/completions", json=BODY)).json()

        results["httpx"] = await measure(plain, n, concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency + 16)
    async with aiohttp.ClientSession(base_url=url, connector=connector) as session:

        async def native() -> None:
            async with session.post("/v1/chat/completions", json=BODY) as response:
                await response.json()

        results["aiohttp"] = await measure(native, n, concurrency)
    async with HttpxAiohttpClient(base_url=url, limits=limits, timeout=60) as client:

        async def bridged() -> None:
            (await client.post("/v1/chat/completions", json=BODY)).json()

        results["httpx over aiohttp"] = await measure(bridged, n, concurrency)
    return results


async def main(n: int) -> dict[str, Any]:
    report: dict[str, Any] = {"requests": n, "by_concurrency": {}}
    # The simulator runs in a thread of this process: its CPU is the same for every client.
    with EngineSimulator("instant", models=["m"]).in_thread() as sim:
        for concurrency in (8, 128):
            report["by_concurrency"][str(concurrency)] = await run(sim.url, n, concurrency)
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1500)
    report = asyncio.run(main(parser.parse_args().requests))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=1) + "\n")
    for concurrency, rows in report["by_concurrency"].items():
        for name, row in rows.items():
            rate, cpu = row["requests_per_s"], row["cpu_us_per_call"]
            print(f"{concurrency:>4} concurrent  {name:<20} {rate:>8} req/s  {cpu:>8} µs CPU/call")
