"""BENCHMARKS §1's run 7 tables: the 1B shape's production path on one and on two engines.

Run 7 (one H100, one lease) served the gemma-3-1b shape (random weights) with ``guidance`` and
the ``eval-v3`` schema: one engine at vLLM's default memory, then two ``vllm serve`` processes
on the same GPU with one worker each in one consumer group, and the offline ceiling of one
engine on the very requests of the one-engine run. Rates are from the workers' start; the GPU
share is the NVML samples' mean over each run's own window (``gpu.csv``: epoch, util %, MiB).
"""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path
from typing import Any

_CANDIDATES = 170_000
_RUN = "gpu/run7"


def _load(results: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((results / _RUN / name).read_text())
    return data


def _gpu_mean(results: Path, start: float, end: float) -> float | None:
    """Mean GPU utilisation (%) of the samples inside [start, end]."""
    with (results / _RUN / "gpu.csv").open() as rows:
        values = [float(r[1]) for r in csv.reader(rows) if start <= float(r[0]) <= end]
    return sum(values) / len(values) if values else None


def _e2e_window(results: Path, name: str, data: dict[str, Any]) -> tuple[float, float]:
    """The workers' start and the last result, from the per-result times."""
    with gzip.open(results / _RUN / f"e2e-{name}.times.jsonl.gz", "rt") as lines:
        last = max(json.loads(line)["t"] for line in lines)
    return data["started_at"], data["started_at"] + last


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _minutes(rate: float | None) -> str:
    return "-" if not rate else f"{_CANDIDATES / rate / 60:,.0f} min"


def _e2e_row(results: Path, name: str, label: str) -> tuple[str, float]:
    data = _load(results, f"e2e-{name}.json")
    stats = data["stats"]
    rate = stats["requests_per_s_from_start"]
    useful = stats["usefulness"]["useful_share"]
    gpu = _gpu_mean(results, *_e2e_window(results, name, data))
    row = (
        f"| {label} | {stats['results']:,} | {_fmt(rate)} | {_fmt(stats['ok_share'])} | "
        f"{_fmt(useful)} | {_fmt(stats['completion_tokens']['mean'], 0)} | "
        f"{_fmt(stats['output_tokens_per_s_from_start'], 0)} | {_fmt(gpu, 0)} | "
        f"{_fmt(stats.get('engine_calls_per_result'))} | {_minutes(rate)} |"
    )
    return row, rate


def _offline_row(results: Path, run: str, label: str) -> tuple[str, float]:
    data = _load(results, "offline.json")["runs"][run]
    validity = data.get("validation") or {}
    useful = (validity.get("usefulness") or {}).get("useful_share")
    gpu = _gpu_mean(results, data["started_at"], data["ended_at"])
    rate = data["requests_per_s"]
    row = (
        f"| {label} | {data['requests']:,} | {_fmt(rate)} | "
        f"{_fmt(validity.get('valid_share'))} | {_fmt(useful)} | "
        f"{_fmt(data['output_tokens']['mean'], 0)} | {_fmt(data['output_tokens_per_s'], 0)} | "
        f"{_fmt(gpu, 0)} | - | {_minutes(rate)} |"
    )
    return row, rate


def run7_table(results: Path) -> str:
    """Every run of run 7, then the ratios taken inside it."""
    header = (
        "| how the engine was driven | requests | results/s from the start | ok share | "
        "useful share | tokens per reply | output tok/s | GPU busy % | engine calls per result | "
        "170,000 at this rate |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    )
    offline, ceiling = _offline_row(
        results, "schema", "offline, one engine, the schema, all at once (its ceiling)"
    )
    one, one_rate = _e2e_row(results, "adaptive", "**end to end, one engine** (memory 0.9)")
    two, two_rate = _e2e_row(
        results, "engines2-r1", "**end to end, two engines on the GPU** (0.42 each, a worker each)"
    )
    free, _ = _offline_row(
        results, "noschema", "offline, no schema, `ignore_eos`, 150-200 tokens (pass-through)"
    )
    ratios = (
        "\n\n| ratio (same lease, same machine) | value |\n| --- | ---: |\n"
        f"| one engine end to end ÷ its offline ceiling (the same 4,000 requests) | "
        f"{one_rate / ceiling:.2f} |\n"
        f"| two engines ÷ one engine, end to end | {two_rate / one_rate:.2f} |\n"
        f"| two engines ÷ one engine's offline ceiling | {two_rate / ceiling:.2f} |"
    )
    return "\n".join((header, offline, one, two, free)) + ratios


def run7_provenance(results: Path) -> str:
    """Commit, machine and versions, as the raw files record them."""
    record = _load(results, "e2e-engines2-r1.json")["provenance"]
    gpu = record["gpus"][0]
    versions = record["versions"]
    return (
        "| commit | dirty | GPU | memory | driver | vLLM | torch | llguidance | Python |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
        f"| {record['commit'][:7]} | {record['dirty']} | {gpu['name']} | "
        f"{gpu['memory.total']} | {gpu['driver_version']} | {versions['vllm']} | "
        f"{versions['torch']} | {versions['llguidance']} | {record['python']} |"
    )


def run7_summary(results: Path) -> str:
    """README: the 1B shape's production path on one and on two engines of one GPU (run 7)."""
    lines = [
        "| on one H100, gemma-3-1b shape, the schema on | results/s from the start | ok share | "
        "170,000 candidates |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, label in (
        ("adaptive", "one vLLM engine, one worker"),
        ("engines2-r1", "two vLLM engines on the GPU, a worker each, one consumer group"),
    ):
        stats = _load(results, f"e2e-{name}.json")["stats"]
        rate = stats["requests_per_s_from_start"]
        lines.append(
            f"| {label} | {rate:.2f} | {stats['ok_share']:.2f} | "
            f"{_minutes(rate * stats['ok_share'])} |"
        )
    return "\n".join(lines)
