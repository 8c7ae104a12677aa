"""Small helpers shared by the GPU benchmark scripts (standard library only).

Also runnable: ``python3 benchlib.py gpu-sample FILE`` appends one line per half second
(``epoch_s,gpu_util_pct,mem_used_mib``) until killed; ``report.py`` averages it per phase.
"""

from __future__ import annotations

import importlib
import json
import math
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

# One sample line of the Prometheus text format: name, optional labels, value.
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", re.MULTILINE)
_LE = re.compile(r'le="([^"]+)"')


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Sequence[float]) -> dict[str, float | int | None]:
    """Count, mean and the percentiles the report quotes."""
    return {
        "n": len(values),
        "mean": sum(values) / len(values) if values else None,
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
    }


def http_text(url: str, timeout: float = 5.0) -> str | None:
    """GET ``url`` and return the body, or None when it does not answer 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body: bytes = response.read()
            return body.decode("utf-8", "replace")
    except (urllib.error.URLError, OSError):
        return None


def http_post(url: str, timeout: float = 10.0) -> tuple[int, str]:
    """POST an empty body; returns the HTTP status (0 when nothing answered) and the body."""
    request = urllib.request.Request(url, data=b"", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body: bytes = response.read()
            return int(response.status), body.decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except (urllib.error.URLError, OSError):
        return 0, ""


def metric_sums(text: str | None, prefix: str = "") -> dict[str, float]:
    """Sums every sample of each metric name over its labels (histogram buckets excluded)."""
    sums: dict[str, float] = {}
    for name, _labels, value in _SAMPLE.findall(text or ""):
        if not name.startswith(prefix) or name.endswith("_bucket"):
            continue
        try:
            sums[name] = sums.get(name, 0.0) + float(value)
        except ValueError:
            continue
    return sums


def label_sums(text: str | None, name: str, label: str) -> dict[str, float]:
    """Samples of metric ``name`` summed by the value of one of their labels."""
    pattern = re.compile(label + r'="([^"]*)"')
    sums: dict[str, float] = {}
    for sample, labels, value in _SAMPLE.findall(text or ""):
        match = pattern.search(labels or "")
        if sample != name or match is None:
            continue
        sums[match.group(1)] = sums.get(match.group(1), 0.0) + float(value)
    return sums


def histogram_quantiles(
    text: str | None, name: str, quantiles: Iterable[float] = (50, 95, 99)
) -> dict[str, float | None]:
    """Quantiles of a Prometheus histogram, interpolated inside buckets (as histogram_quantile)."""
    buckets: dict[float, float] = {}
    for sample, labels, value in _SAMPLE.findall(text or ""):
        match = _LE.search(labels or "")
        if sample != f"{name}_bucket" or match is None:
            continue
        bound = math.inf if match.group(1) == "+Inf" else float(match.group(1))
        buckets[bound] = buckets.get(bound, 0.0) + float(value)
    result: dict[str, float | None] = {}
    ordered = sorted(buckets.items())
    total = ordered[-1][1] if ordered else 0.0
    for q in quantiles:
        result[f"p{q:g}"] = _bucket_quantile(ordered, total * q / 100.0) if total else None
    return result


def _bucket_quantile(ordered: list[tuple[float, float]], target: float) -> float | None:
    previous_bound, previous_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= target:
            if math.isinf(bound):
                return previous_bound  # beyond the last finite bucket: its bound is all we know
            share = (
                (target - previous_count) / (count - previous_count)
                if count > previous_count
                else 1
            )
            return previous_bound + (bound - previous_bound) * share
        previous_bound, previous_count = bound, count
    return None


def read_json(path: Path) -> Any:
    """The JSON in ``path``, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_json(path: Path, data: Any) -> None:
    """Writes ``data`` atomically (a half-written file never comes back from the device)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".partial")
    partial.write_text(json.dumps(data, indent=1, sort_keys=True, default=str) + "\n")
    partial.replace(path)


def gpu_sample(path: Path, interval_s: float = 0.5) -> None:
    """Appends GPU utilisation samples to ``path`` until the process is killed.

    Reads NVML through ``pynvml`` (nvidia-ml-py, in the vLLM bundle) where it imports, else
    asks ``nvidia-smi`` each time.
    """
    print(f"gpu-sample: loading NVML, samples to {path}", file=sys.stderr, flush=True)
    try:
        nvml: Any = importlib.import_module("pynvml")
        nvml.nvmlInit()
        handle = nvml.nvmlDeviceGetHandleByIndex(0)
    except Exception as exc:  # any NVML failure means: ask nvidia-smi instead
        print(f"gpu-sample: no NVML ({exc!r}), asking nvidia-smi", file=sys.stderr, flush=True)
        handle = None

    def sample() -> tuple[int, int]:
        if handle is not None:
            util = nvml.nvmlDeviceGetUtilizationRates(handle)
            return util.gpu, nvml.nvmlDeviceGetMemoryInfo(handle).used // 2**20
        query = ["nvidia-smi", "-i", "0", "--query-gpu=utilization.gpu,memory.used"]
        query.append("--format=csv,noheader,nounits")
        # A timeout: a hung nvidia-smi would otherwise leave the file empty without a word.
        reply = subprocess.run(query, capture_output=True, text=True, check=True, timeout=10).stdout
        util_pct, used_mib = reply.split(",")
        return int(util_pct), int(used_mib)

    with path.open("a", buffering=1) as out:
        first = True
        while True:
            util_pct, used_mib = sample()
            out.write(f"{time.time():.3f},{util_pct},{used_mib}\n")
            if first:
                print(f"gpu-sample: first sample {util_pct}% {used_mib} MiB", file=sys.stderr)
                first = False
            time.sleep(interval_s)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "gpu-sample":
        gpu_sample(Path(sys.argv[2]))
    else:
        sys.exit("usage: benchlib.py gpu-sample FILE")
