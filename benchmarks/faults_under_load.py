"""``pytest -m faults`` N times in a row under load; each run's outcome as one raw JSONL record.

The load is the one under which the fault suite's bounds were once overshot on a shared 2-core
machine: the unit suite running in a loop beside it and CPU hogs (``yes > /dev/null``). Plain
hogs alone did not reproduce that failure, which is why the unit loop is part of the load.

Each record holds the run's pass/fail and exit code, its duration, the commit and whether the
tree was dirty, the date, the load (the unit loop's runs and failures during the run, the load
average at start and end) and every test's outcome and duration (from pytest's JUnit XML). The
fault scenarios themselves append their figures to ``faults.jsonl`` as they always do; README's
fault table is rendered from those. The load is stopped when the runs end, however they end.

Usage:
    .venv/bin/python -m benchmarks.faults_under_load --runs 3
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from xml.etree import ElementTree

# benchmarks/ is not a package: see reporting.py for why mypy and Python name it differently.
if TYPE_CHECKING:
    import reporting
else:
    reporting = importlib.import_module("benchmarks.reporting")

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = reporting.RESULTS_DIR / "faults_under_load.jsonl"
PYTEST = (sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider")
UNIT_SUITE = (*PYTEST, "tests/unit")
FAULT_SUITE = (*PYTEST, "-m", "faults")
STOP_TIMEOUT_S = 10.0


def _spawn(command: list[str], log: IO[bytes] | int) -> subprocess.Popen[bytes]:
    # Its own session: stopping it reaches every process it started, and nothing else.
    return subprocess.Popen(
        command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip


def _end(process: subprocess.Popen[bytes]) -> None:
    """Stops ``process`` and its process group: SIGTERM, then SIGKILL after a grace period."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if process.poll() is not None:
            return
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            continue


class Load:
    """CPU hogs and the unit suite in a loop, started together and stopped together.

    Args:
        hogs: how many ``yes > /dev/null`` processes to run.
        unit_loop: whether to run the unit suite over and over beside the fault suite.
        log_dir: where the unit loop's output goes.
    """

    def __init__(self, hogs: int, unit_loop: bool, log_dir: Path) -> None:
        self.hogs = hogs
        self.unit_loop = unit_loop
        self._log_dir = log_dir
        self._processes: list[subprocess.Popen[bytes]] = []
        self._unit: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()  # guards _unit, and the stop against a new unit run
        self._thread = threading.Thread(target=self._loop_units, name="unit-loop", daemon=True)
        self.unit_runs: Counter[str] = Counter()  # "passed"/"failed", written by the loop only

    def start(self) -> None:
        """Starts the hogs and the unit loop."""
        for _ in range(self.hogs):
            self._processes.append(_spawn(["yes"], subprocess.DEVNULL))
        if self.unit_loop:
            self._thread.start()

    def stop(self) -> None:
        """Stops the unit loop (its current run included) and the hogs."""
        with self._lock:
            self._stop.set()
            unit = self._unit
        if unit is not None:
            _end(unit)
        if self._thread.is_alive():
            self._thread.join()
        for process in self._processes:
            _end(process)

    def _loop_units(self) -> None:
        with (self._log_dir / "unit-loop.log").open("ab") as log:
            while True:
                with self._lock:
                    if self._stop.is_set():
                        return
                    self._unit = _spawn(list(UNIT_SUITE), log)
                code = self._unit.wait()
                if not self._stop.is_set():  # a run cut short by stop() counts as neither
                    self.unit_runs["passed" if code == 0 else "failed"] += 1


def junit_outcomes(junit_xml: Path) -> dict[str, dict[str, Any]]:
    """Every test's outcome and duration from pytest's JUnit XML (empty if there is none)."""
    if not junit_xml.exists():
        return {}
    outcomes: dict[str, dict[str, Any]] = {}
    for case in ElementTree.parse(junit_xml).getroot().iter("testcase"):
        kinds = {child.tag for child in case}
        outcome = next((name for tag, name in RESULT_TAGS if tag in kinds), "passed")
        key = f"{case.get('classname', '')}::{case.get('name', '')}"
        outcomes[key] = {"outcome": outcome, "duration_s": round(float(case.get("time", 0)), 2)}
    return outcomes


# JUnit XML marks a test that did not pass with one child element; the first match wins.
RESULT_TAGS = (("error", "error"), ("failure", "failed"), ("skipped", "skipped"))


def run_once(index: int, runs: int, load: Load, log_dir: Path, extra: list[str]) -> dict[str, Any]:
    """Runs the fault suite once and returns its record."""
    junit = log_dir / f"faults-{index}.xml"
    log_path = log_dir / f"faults-{index}.log"
    command = [*FAULT_SUITE, f"--junitxml={junit}", *extra]
    units_before = Counter(load.unit_runs)
    source = reporting.source()  # what the run measures: the tree as it starts
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    load_start = reporting.load_average()
    started = time.monotonic()
    with log_path.open("wb") as log:
        code = _spawn(command, log).wait()
    duration = round(time.monotonic() - started, 1)
    tests = junit_outcomes(junit)
    return {
        "run": index,
        "of": runs,
        "passed": code == 0,
        "exit_code": code,
        "duration_s": duration,
        "started_at": started_at,
        "source": source,
        "command": command[1:],
        "load": {
            "hogs": load.hogs,
            "unit_loop": load.unit_loop,
            "unit_runs_during": dict(Counter(load.unit_runs) - units_before),
            "load_average_start": load_start,
            "load_average_end": reporting.load_average(),
        },
        "counts": dict(Counter(t["outcome"] for t in tests.values())),
        "tests": tests,
        "log": str(log_path),
    }


def main(argv: list[str] | None = None) -> int:
    """Runs the fault suite ``--runs`` times under load; exit code 0 only if every run passed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="fault-suite runs, back to back")
    parser.add_argument("--hogs", type=int, default=2, help="`yes > /dev/null` processes")
    parser.add_argument("--no-unit-loop", action="store_true", help="no unit suite beside it")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="JSONL file to append to")
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments (after --)")
    args = parser.parse_args(argv)
    log_dir = Path(tempfile.mkdtemp(prefix="faults-under-load-"))
    load = Load(args.hogs, not args.no_unit_loop, log_dir)
    records: list[dict[str, Any]] = []
    load.start()
    try:
        for index in range(1, args.runs + 1):
            record = run_once(index, args.runs, load, log_dir, args.pytest_args)
            records.append(record)
            args.output.parent.mkdir(parents=True, exist_ok=True)
            with args.output.open("a") as out:
                out.write(json.dumps(record, sort_keys=True) + "\n")
            verdict = "passed" if record["passed"] else f"FAILED (exit {record['exit_code']})"
            units = record["load"]["unit_runs_during"]
            summary = (
                f"{verdict} in {record['duration_s']} s, {record['counts']}, unit loop {units}"
            )
            print(f"run {index}/{args.runs}: {summary}", flush=True)
    finally:
        load.stop()
    print(f"records appended to {args.output}; logs in {log_dir}")
    return 0 if records and all(r["passed"] for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
