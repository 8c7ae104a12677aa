"""The throughput curve of the engine simulator's ``vllm`` profile, measured over HTTP.

Starts ``python -m evalstream_local.simulator.server --profile vllm`` in its own process, then for
each
concurrency keeps that many ``/v1/completions`` requests in flight (a new one the moment one
returns, like ``vllm bench serve --max-concurrency``): ~2000-token prompts, 200 output tokens
(``ignore_eos``). The first ``concurrency`` answers warm the engine up; the next ones are timed.
Times are reported in simulated seconds (wall seconds x ``time_scale``), next to what the step
model predicts in virtual time, and written to ``benchmarks/results/sim_shape.json``. A closing
line gives each level's throughput relative to 128 concurrent: the curve should peak between 64
and 160 and decline beyond (about 0.3 at 8, 0.9 at 64 and 256, 0.8 at 1024).

Run from the repository root::

    python -m benchmarks.sim_shape                  # 5x faster than real time: ~1.5 min
    python -m benchmarks.sim_shape --concurrency 8 64 128 --time-scale 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp

from evalstream_local.simulator.calibration import closed_loop, make_prompt
from evalstream_local.simulator.profile import load_profile

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "sim_shape.json"
CONCURRENCY = (1, 8, 16, 32, 64, 96, 128, 160, 256, 512, 1024)
PROMPT_TOKENS = 2000
OUTPUT_TOKENS = 200

SIMULATOR = "evalstream_local.simulator.server"  # run as a module: its own main


@dataclass(frozen=True)
class Row:
    """One concurrency level, in simulated seconds."""

    concurrency: int
    requests: int
    requests_per_s: float
    output_tokens_per_s: float
    mean_latency_s: float
    p50_latency_s: float
    p99_latency_s: float
    predicted_requests_per_s: float
    predicted_latency_s: float


class Load:
    """Closed-loop clients against one simulator URL."""

    def __init__(self, url: str, time_scale: float) -> None:
        self.url = url
        self.time_scale = time_scale
        self._issued = 0

    async def run(self, concurrency: int, measured: int) -> tuple[int, float, list[float]]:
        """Returns (timed answers, simulated seconds, simulated latencies)."""
        # aiohttp's client, not httpx: at hundreds of requests/s httpx's pool costs more CPU
        # than the simulator itself and would flatten the curve.
        connector = aiohttp.TCPConnector(limit=concurrency)
        timeout = aiohttp.ClientTimeout(total=600)
        async with aiohttp.ClientSession(self.url, connector=connector, timeout=timeout) as http:
            done: list[tuple[float, float]] = []  # (finished at, latency), wall seconds
            target = concurrency + measured

            async def client() -> None:
                while len(done) < target:
                    started = time.monotonic()
                    await self._one(http)
                    done.append((time.monotonic(), time.monotonic() - started))

            await asyncio.gather(*(client() for _ in range(concurrency)))
        timed = sorted(done)[concurrency:target]
        window = timed[-1][0] - sorted(done)[concurrency - 1][0]
        latencies = [latency * self.time_scale for _, latency in timed]
        return len(timed), window * self.time_scale, latencies

    async def _one(self, http: aiohttp.ClientSession) -> None:
        prompt = make_prompt(self._issued, PROMPT_TOKENS)
        self._issued += 1
        body = {"prompt": prompt, "max_tokens": OUTPUT_TOKENS, "ignore_eos": True}
        async with http.post("/v1/completions", json=body) as response:
            response.raise_for_status()
            answer = await response.json()
        assert answer["usage"]["completion_tokens"] == OUTPUT_TOKENS


def start_simulator(time_scale: float) -> tuple[subprocess.Popen[str], str]:
    """Starts the simulator process; returns it and its URL."""
    command = [sys.executable, "-m", SIMULATOR, "--profile", "vllm", "--port", "0"]
    command += ["--time-scale", str(time_scale)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("url="):
        proc.kill()
        raise RuntimeError(f"the simulator did not start: {line!r}")
    return proc, line.removeprefix("url=")


async def sweep(url: str, levels: list[int], time_scale: float) -> list[Row]:
    """Measures every concurrency level against the running simulator."""
    load = Load(url, time_scale)
    profile = load_profile("vllm")
    rows = []
    for concurrency in levels:
        measured = max(2 * concurrency, 30)
        count, seconds, latencies = await load.run(concurrency, measured)
        predicted = closed_loop(profile, concurrency, measured_requests=measured)
        quantiles = statistics.quantiles(latencies, n=100)
        rows.append(
            Row(
                concurrency=concurrency,
                requests=count,
                requests_per_s=count / seconds,
                output_tokens_per_s=count * OUTPUT_TOKENS / seconds,
                mean_latency_s=statistics.fmean(latencies),
                p50_latency_s=statistics.median(latencies),
                p99_latency_s=quantiles[98],
                predicted_requests_per_s=predicted.requests_per_s,
                predicted_latency_s=predicted.mean_latency_s,
            )
        )
        print(format_row(rows[-1]), flush=True)
    return rows


def format_row(row: Row) -> str:
    return (
        f"{row.concurrency:>6} {row.requests_per_s:>8.1f} {row.output_tokens_per_s:>9.0f} "
        f"{row.mean_latency_s:>8.2f} {row.p50_latency_s:>8.2f} {row.p99_latency_s:>8.2f} "
        f"{row.predicted_requests_per_s:>9.1f} {row.predicted_latency_s:>9.2f}"
    )


def relative_to(rows: list[Row], reference: int = 128) -> dict[int, float]:
    """Each level's requests/s divided by the reference level's; empty without that level."""
    base = next((r.requests_per_s for r in rows if r.concurrency == reference), None)
    if not base:
        return {}
    return {r.concurrency: round(r.requests_per_s / base, 3) for r in rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--concurrency", type=int, nargs="+", default=list(CONCURRENCY))
    parser.add_argument("--time-scale", type=float, default=5.0, help="simulated-time speed-up")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    proc, url = start_simulator(args.time_scale)
    started = time.monotonic()
    try:
        print(f"engine simulator {url}, profile vllm, {args.time_scale:g}x faster than real time")
        print(f"{PROMPT_TOKENS}-token prompts, {OUTPUT_TOKENS} output tokens; simulated seconds")
        print(
            f"{'conc':>6} {'req/s':>8} {'out tok/s':>9} {'mean s':>8} {'p50 s':>8} "
            f"{'p99 s':>8} {'model r/s':>9} {'model s':>9}"
        )
        rows = asyncio.run(sweep(url, args.concurrency, args.time_scale))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    relative = relative_to(rows)
    peak = max(rows, key=lambda r: r.requests_per_s)
    print(f"peak {peak.requests_per_s:.1f} req/s at {peak.concurrency} concurrent")
    if relative:
        print("relative to 128: " + ", ".join(f"{c} {v:.2f}" for c, v in relative.items()))
    report: dict[str, Any] = {
        "profile": asdict(load_profile("vllm", time_scale=args.time_scale)),
        "prompt_tokens": PROMPT_TOKENS,
        "output_tokens": OUTPUT_TOKENS,
        "wall_seconds": round(time.monotonic() - started, 1),
        "peak_concurrency": peak.concurrency,
        "relative_to_128": relative,
        "rows": [asdict(row) for row in rows],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
