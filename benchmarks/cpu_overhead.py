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

This module is the entry point (and prints the table); the cases and their runs are in
``cpu_run``, the pass-through loop in ``passthrough``, the py-spy runs in ``cpu_profile``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

# benchmarks/ is not a package (no __init__.py), so mypy names benchmarks/harness.py `harness`
# while Python, running `-m benchmarks.cpu_overhead`, imports it as `benchmarks.harness`.
if TYPE_CHECKING:
    import cpu_profile
    import cpu_run
    import harness
    import passthrough
    import reporting
else:
    cpu_profile = importlib.import_module("benchmarks.cpu_profile")
    cpu_run = importlib.import_module("benchmarks.cpu_run")
    harness = importlib.import_module("benchmarks.harness")
    passthrough = importlib.import_module("benchmarks.passthrough")
    reporting = importlib.import_module("benchmarks.reporting")


def print_table(rows: list[dict[str, Any]]) -> None:
    """One line per case."""
    num = cpu_run.num
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
            f"{row['case']:<14}{row['results']:>8}{num(rate['first_to_last']):>8}"
            f"{num(rate['steady_10_90']):>8}{num(idle and 100 * idle):>6}"
            f"{num(per.get('worker')):>8}{num(cores.get('worker'), 2):>7}"
            f"{num(per.get('engine')):>8}{num(per.get('broker')):>8}"
            f"{num(100 * cpu.get('machine_busy_share', 0)):>6}   {row['load_average'][1][0]}"
        )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["passthrough"]:
        return passthrough.passthrough(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--profile", action="store_true", help="also record py-spy profiles")
    parser.add_argument("--profile-seconds", type=float, default=20.0)
    parser.add_argument("--output", type=Path, default=reporting.RESULTS_DIR / "cpu_overhead.json")
    args = parser.parse_args(argv)
    if args.profile and not cpu_profile.PY_SPY.exists():
        parser.error(f"--profile needs py-spy at {cpu_profile.PY_SPY} (pip install py-spy)")
    report: dict[str, Any] = {"machine": reporting.machine(), "requests": args.requests}
    model, load = report["machine"]["cpu_model"], reporting.load_average()
    print(f"{os.cpu_count()} CPUs, {model}, load {load}")
    started = time.monotonic()
    with harness.Bench("cpu") as bench:
        run = cpu_run.Run(bench, args.requests)
        url, engine = bench.simulator("instant")
        engine_pid = engine.pid
        report["mean_request_bytes"] = round(run.request_bytes)
        # Not compared: the broker's JIT and the page cache start cold.
        report["warm_up"] = run.measure(cpu_run.Case("warm-up", None), url, engine_pid)
        rows = []
        for case in cpu_run.CASES:
            rows.append(run.measure(case, url, engine_pid))
            print(f"  {case.name}: {rows[-1]['results']} results", flush=True)
        report["cases"] = rows
        report["idle_worker"] = run.idle(url)
        if args.profile:
            report["profiles"] = cpu_profile.profile(
                bench, run, args.profile_seconds, url, engine_pid
            )
    report["wall_seconds"] = round(time.monotonic() - started, 1)
    report["load_average_at_end"] = reporting.load_average()
    print_table(rows)
    idle = report["idle_worker"].get("cores_used")
    print(f"a worker with nothing to do uses {cpu_run.num(idle, 3)} cores (idle loops)")
    reporting.write_json(args.output, report)
    print(f"\nwrote {args.output} ({report['wall_seconds']} s); logs in {bench.work}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # everything started is stopped by then
        sys.exit(130)
