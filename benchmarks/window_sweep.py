"""Adaptive versus fixed in-flight windows, one worker through a real broker, per engine profile.

A local broker and the engine simulator (``vllm`` or ``ollama`` profile, time-scaled); first a
short warm-up run that is not compared, then each configuration reads the same backlog of
``--requests`` synthetic requests (``producer synth --seed 7``, published once before any worker
starts) with its own worker, consumer group and results topic, one after the other, for
``--seconds`` (40) or until every result is in. The backlog is sized to outlast every run: once
it runs out, the engine finishes its batch without new prefills, faster (in trials that drain
lifted a window-512 run from ~90 to ~130 req/s); a row whose backlog ran out is marked
``drained``.

* ``vllm``: fixed windows 8, 16, 32, 64, 128, 256, 512, and the adaptive policy (start 32);
* ``ollama`` (4 parallel slots, a queue of 512 beyond which it answers 503): fixed windows
  1, 2, 4, 8, 16, 64, 256, and the adaptive policy (start 32).

Per configuration: throughput between the 10 % and the 90 % result (by Kafka timestamps), and
between the 50 % and the 90 % one (once an adaptive window has settled); latency percentiles
from the results' ``timings`` (``in_worker`` = consumed from Kafka until the engine answered;
``inference`` = engine time; ``end_to_end`` = from the request's timestamp, which a backlog
makes mostly waiting in Kafka); the engine's 503s; the worker's window moves (from its log).
Then the ratios adaptive / best fixed and adaptive / smallest fixed window. Each configuration
runs once: on a shared 2-core machine figures move by several per cent between runs, so the
machine's CPU use and load average are printed and stored with every row.

Run from the repository root::

    .venv/bin/python -m benchmarks.window_sweep                      # vllm, ~7 minutes
    .venv/bin/python -m benchmarks.window_sweep --profile ollama     # ~7 minutes
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import os
import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

# benchmarks/ is not a package (no __init__.py), so mypy names benchmarks/harness.py `harness`
# while Python, running `-m benchmarks.window_sweep`, imports it as `benchmarks.harness`.
if TYPE_CHECKING:
    import harness
    import reporting
    import sampling
else:
    harness = importlib.import_module("benchmarks.harness")
    reporting = importlib.import_module("benchmarks.reporting")
    sampling = importlib.import_module("benchmarks.sampling")

RUN_SECONDS = 40.0
WARM_UP_WINDOW, WARM_UP_SECONDS = 64, 12.0
ADAPTIVE_START = 32
NPROC = os.cpu_count() or 1
# "window 32 -> 64 (45.2 req/s ± 1.2%, 31 in flight, 9 s, overloaded)", or with the engine's
# occupancy "window 32 -> 64 (45.2 req/s, 31 in flight, 1 s; engine runs 31, 0 waiting)",
# logged by the window controller (tests/unit/test_window_controller.py checks that this reads
# what it writes).
_WINDOW_MOVE = re.compile(
    r"^(\S+ \S+) \S+ consumer\.window_controller: window (\d+) -> (\d+) "
    r"\(([\d.]+) req/s(?: ± ([\d.]+|inf)%)?, (\d+) in flight(?:, (\d+) s)?(, overloaded)?"
    r"(?:; engine runs \d+, \d+ waiting[^)]*)?\)"
)


@dataclass(frozen=True)
class Profile:
    """An engine profile and the sweep run against it."""

    name: str
    backend: str
    time_scale: float
    requests: int
    windows: tuple[int, ...]
    engine_options: tuple[str, ...] = ()


PROFILES = {
    # The simulated H200 levels off at ~40-45 req/s with these requests; x2 makes that ~90 req/s,
    # so 5,000 requests outlast a 40 s run, and the worker stays far below its own CPU limit.
    "vllm": Profile("vllm", "openai", 2.0, 5000, (8, 16, 32, 64, 128, 256, 512)),
    # ~0.56 req/s simulated with the 4 slots busy; x50 makes that ~28 req/s.
    "ollama": Profile(
        "ollama",
        "ollama",
        50.0,
        1300,
        (1, 2, 4, 8, 16, 64, 256),
        ("--num-parallel", "4", "--max-queue", "512"),
    ),
}


class Sweep:
    """The broker and the published backlog; `run` measures one window on a fresh engine."""

    def __init__(
        self, bench: harness.Bench, profile: Profile, requests: int, scale: float, seconds: float
    ) -> None:
        self.bench = bench
        self.profile = profile
        self.requests = requests
        self.scale = scale
        self.seconds = seconds
        self.bootstrap = bench.broker()
        self.topic = f"bench.window.{profile.name}.requests"
        harness.Topics.fresh(self.topic, "setup").create(self.bootstrap)
        file = bench.work / "requests.jsonl"
        harness.synth(requests, file)
        harness.publish(self.bootstrap, self.topic, file)

    def warm_up(self) -> dict[str, Any]:
        """A first, short run that is not compared: the broker's JIT and page cache start cold."""
        return self.run(WARM_UP_WINDOW, WARM_UP_SECONDS, name="warm-up")

    def run(
        self, window: int | None, seconds: float | None = None, name: str | None = None
    ) -> dict[str, Any]:
        """One worker over the backlog: a fixed ``window``, or adaptive when None.

        Every run gets its own simulator: one engine serving every run kept the prompts of the
        runs before in its prefix cache, and each run re-reads the same backlog, so later runs
        hit that cache for the requests earlier ones had reached (+20 % until they got past).
        """
        name = name or (f"fixed-{window}" if window is not None else "adaptive")
        options = ["--window-policy", "fixed", "--window", str(window)]
        if window is None:
            options = ["--window-policy", "adaptive", "--window", str(ADAPTIVE_START)]
        url, engine = self.bench.simulator(
            self.profile.name, self.scale, *self.profile.engine_options
        )
        try:
            row = self._measure(name, options, url, engine.pid, seconds or self.seconds)
        finally:
            engine.stop()
        return {"config": name, "window": window, **row}

    def _measure(
        self, name: str, options: list[str], url: str, engine_pid: int, seconds: float
    ) -> dict[str, Any]:
        topics = harness.Topics.fresh(self.topic, name)
        topics.create(self.bootstrap)
        reader = sampling.ResultReader(self.bootstrap, topics.results, timings=True)
        load_before = reporting.load_average()
        started = time.monotonic()
        worker = self.bench.worker(topics, url, self.profile.backend, *options)
        tracer = sampling.Tracer({"worker": worker.pid, "engine": engine_pid})
        try:
            complete = sampling.drive(reader, self.requests, tracer, worker.alive, seconds)
        finally:
            exit_code = worker.stop()
            reader.close()
        stats = harness.simulator_stats(url)
        cpu = tracer.between(0, len(reader))
        times = list(reader.times.values())
        return {
            "results": len(reader),
            "all_results": complete,
            "worker_exit_code": exit_code,
            "failed_results": reader.failed,
            "wall_s": time.monotonic() - started,
            "requests_per_s": reporting.rates(times),
            "results_per_second": reporting.per_second(times),
            "latency_s": {
                name: {f"p{q}": reporting.percentile(values, q) for q in (50, 95)}
                for name, values in reader.latencies.items()
            },
            "engine": {key: stats[key] for key in ("received", "completed", "rejected")},
            "engine_status": stats["by_status"],
            "engine_prefix_cache_hit_rate": stats["prefix_cache_hit_rate"],
            "cores_used": {
                k: v / cpu["seconds"] for k, v in cpu["cpu_s"].items() if cpu["seconds"]
            },
            "window_moves": window_moves(self.bench.log(topics.group)),
            "load_average": [load_before, reporting.load_average()],
        }


@dataclass(frozen=True)
class WindowMove:
    """One move of the adaptive window, as the worker logged it."""

    at: str
    old: int
    new: int
    requests_per_s: float
    in_flight: int
    overloaded: bool
    relative_error: float | None = None  # of the sample's rate
    sample_s: float | None = None  # how long the sample lasted


def window_moves(log: Path) -> dict[str, Any]:
    """The window's moves, read from the worker's log; a reversal turns the direction."""
    moves = []
    text = log.read_text(errors="replace") if log.exists() else ""  # no log: no moves seen
    for line in text.splitlines():
        match = _WINDOW_MOVE.match(line)
        if match:
            stamp, old, new, rate, error, in_flight, seconds, overloaded = match.groups()
            moves.append(
                WindowMove(
                    stamp[11:],
                    int(old),
                    int(new),
                    float(rate),
                    int(in_flight),
                    bool(overloaded),
                    float(error) / 100 if error else None,
                    float(seconds) if seconds else None,
                )
            )
    steps = [m.new - m.old for m in moves]
    return {
        "count": len(moves),
        "reversals": sum(1 for a, b in itertools.pairwise(steps) if a * b < 0),
        "overloaded": sum(1 for m in moves if m.overloaded),
        "limits": [moves[0].old, *(m.new for m in moves)] if moves else [],
        "moves": [asdict(m) for m in moves],
    }


def ratios(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Adaptive throughput over the best fixed window's and over the smallest window's."""
    fixed = [r for r in rows if r["window"] is not None and r["requests_per_s"]["steady_10_90"]]
    adaptive = next((r for r in rows if r["window"] is None), None)
    if not fixed or adaptive is None or not adaptive["requests_per_s"]["steady_10_90"]:
        return {}
    out: dict[str, Any] = {}
    for measure in ("steady_10_90", "late_50_90"):
        rate = adaptive["requests_per_s"][measure] or 0.0
        best = max(fixed, key=lambda r: r["requests_per_s"][measure] or 0.0)
        smallest = min(fixed, key=lambda r: int(r["window"]))
        out[measure] = {
            "best_fixed": best["config"],
            "adaptive_over_best_fixed": rate / best["requests_per_s"][measure],
            "smallest_fixed": smallest["config"],
            "adaptive_over_smallest_fixed": rate / smallest["requests_per_s"][measure],
        }
    out["adaptive_503_per_result"] = adaptive["engine"]["rejected"] / max(1, adaptive["results"])
    return out


def print_row(row: dict[str, Any]) -> None:
    """One table line."""
    rate, latency = row["requests_per_s"], row["latency_s"]
    worker, inference = latency.get("in_worker_s", {}), latency.get("inference_s", {})
    moves, cores = row["window_moves"], row["cores_used"]
    limits = f"{moves['count']} moves, last {moves['limits'][-1]}" if moves["count"] else ""
    limits += " drained" if row["all_results"] else ""
    print(
        f"{row['config']:<11}{row['results']:>6}{_num(rate['steady_10_90'], 1):>8}"
        f"{_num(rate['late_50_90'], 1):>8}{_num(worker.get('p50'), 2):>7}"
        f"{_num(worker.get('p95'), 2):>7}{_num(inference.get('p50'), 2):>7}"
        f"{_num(inference.get('p95'), 2):>7}{row['engine']['rejected']:>6}"
        f"{_num(cores.get('worker'), 2):>6}{_num(cores.get('engine'), 2):>6}"
        f"{_num(100 * cores.get('machine', 0) / NPROC):>6}{row['load_average'][1][0]:>6}  {limits}",
        flush=True,
    )


def print_ratios(summary: dict[str, Any]) -> None:
    """The table's legend, then `ratios`' summary: adaptive over the best and smallest fixed."""
    print(
        "\nreq/s between the 10 % and 90 % results (steady) and the 50 % and 90 % ones (late); "
        "latencies in seconds (wrk: consumed -> answered, inf: engine); wrkC/engC: cores used; "
        "busy%: the whole machine's CPU use"
    )
    for measure in ("steady_10_90", "late_50_90"):
        r = summary.get(measure)
        if r:
            print(
                f"  {measure}: adaptive / best fixed ({r['best_fixed']}) = "
                f"{r['adaptive_over_best_fixed']:.2f}; adaptive / {r['smallest_fixed']} = "
                f"{r['adaptive_over_smallest_fixed']:.2f}"
            )
    if summary:
        print(f"  engine 503s per adaptive result: {summary['adaptive_503_per_result']}")


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="vllm")
    parser.add_argument("--requests", type=int, help="default: the profile's")
    parser.add_argument("--time-scale", type=float, help="default: the profile's")
    parser.add_argument("--windows", type=int, nargs="+", help="fixed windows to sweep")
    parser.add_argument("--seconds", type=float, default=RUN_SECONDS, help="longest run")
    parser.add_argument("--output", type=Path, help="default: results/window_<profile>.json")
    args = parser.parse_args(argv)
    profile = PROFILES[args.profile]
    requests = args.requests or profile.requests
    scale = args.time_scale or profile.time_scale
    windows = tuple(args.windows or profile.windows)
    output = args.output or reporting.RESULTS_DIR / f"window_{profile.name}.json"
    report: dict[str, Any] = {"machine": reporting.machine(), "profile": profile.name}
    report |= {"time_scale": scale, "requests": requests, "adaptive_start": ADAPTIVE_START}
    report["run_seconds_cap"] = args.seconds
    nproc, load = report["machine"]["nproc"], reporting.load_average()
    print(f"{nproc} CPUs, load {load}; {profile.name} x{scale:g}, {requests} requests")
    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    with harness.Bench(f"window-{profile.name}") as bench:
        sweep = Sweep(bench, profile, requests, scale, args.seconds)
        print(
            f"\n{'config':<11}{'done':>6}{'steady':>8}{'late':>8}{'wrk50':>7}{'wrk95':>7}"
            f"{'inf50':>7}{'inf95':>7}{'503s':>6}{'wrkC':>6}{'engC':>6}{'busy%':>6}{'load':>6}"
        )
        report["warm_up"] = sweep.warm_up()
        print_row(report["warm_up"])
        for window in (*windows, None):
            rows.append(sweep.run(window))
            print_row(rows[-1])
    report |= {"rows": rows, "ratios": ratios(rows), "wall_seconds": time.monotonic() - started}
    report["load_average_at_end"] = reporting.load_average()
    print_ratios(report["ratios"])
    reporting.write_json(output, report)
    print(f"wrote {output} ({report['wall_seconds']:.0f} s); logs in {bench.work}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # everything started is stopped by then
        sys.exit(130)
