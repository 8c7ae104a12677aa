"""What a benchmark's report holds besides its raw counts, and how it is written.

The statistics over results (`percentile`, `rates`, `per_second`), the machine and source a
result was measured on (`machine`, `source`, `load_average`), and `write_json`, which writes a
report (by default under `RESULTS_DIR`).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import platform
import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import confluent_kafka

from evalstream_local.broker.jars import KAFKA_VERSION

# benchmarks/ is not a package (no __init__.py), so mypy names benchmarks/harness.py `harness`
# while Python, running `-m benchmarks.<module>`, imports it as `benchmarks.harness`.
if TYPE_CHECKING:
    import harness
else:
    harness = importlib.import_module("benchmarks.harness")

RESULTS_DIR = harness.ROOT / "benchmarks" / "results"


def machine() -> dict[str, Any]:
    """The machine and software a result was measured on."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "confluent_kafka": confluent_kafka.version()[0],
        "librdkafka": confluent_kafka.libversion()[0],
        "kafka_broker": KAFKA_VERSION,
        "httpx": version("httpx"),
        "pydantic": version("pydantic"),
        "load_average_at_start": load_average(),
        "source": source(),
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "gpu": gpu(),
    }


def gpu() -> str | None:
    """The GPUs and driver as nvidia-smi names them; None on a machine without one."""
    try:
        query = ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"]
        reply = subprocess.run(query, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return "; ".join(line.strip() for line in reply.stdout.splitlines() if line.strip()) or None


def source() -> dict[str, Any]:
    """The commit measured, and any uncommitted change to the worker's code."""

    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=harness.ROOT, capture_output=True, text=True)
        return result.stdout.strip() if result.returncode == 0 else "unknown"

    changed = git("status", "--porcelain", "--", "consumer", "producer", "benchmarks", "tests")
    # Raw results written by the run itself are not a change to what was measured.
    changes = [x for x in changed.splitlines() if "benchmarks/results/" not in x]
    return {"commit": git("rev-parse", "HEAD"), "uncommitted": changes, "dirty": bool(changes)}


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def rates(times: Sequence[float]) -> dict[str, float | None]:
    """Results per second, from the results' times.

    ``first_to_last``; ``steady_10_90`` (between the 10 % and the 90 % result); ``late_50_90``
    (from the 50 % result: an adaptive window has had time to settle); ``idle_100ms_share``: the
    share of 100 ms slots between first and last result in which none came (stalls).
    """
    ordered = sorted(times)
    n = len(ordered)
    if n < 10 or ordered[-1] <= ordered[0]:
        return dict.fromkeys(("first_to_last", "steady_10_90", "late_50_90", "idle_100ms_share"))

    def rate(low: float, high: float) -> float | None:
        first, last = int(low * (n - 1)), int(high * (n - 1))
        seconds = ordered[last] - ordered[first]
        return (last - first) / seconds if seconds > 0 else None

    slots = {int((t - ordered[0]) * 10) for t in ordered}
    return {
        "first_to_last": rate(0.0, 1.0),
        "steady_10_90": rate(0.1, 0.9),
        "late_50_90": rate(0.5, 0.9),
        "idle_100ms_share": 1 - len(slots) / (max(slots) + 1),
    }


def per_second(times: Sequence[float]) -> list[int]:
    """Results in each second from the first result on."""
    if not times:
        return []
    first = min(times)
    counts = [0] * (int(max(times) - first) + 1)
    for t in times:
        counts[int(t - first)] += 1
    return counts


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Writes ``data`` as indented JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
