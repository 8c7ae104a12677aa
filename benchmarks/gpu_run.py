"""The raw files of one GPU run (``benchmarks/results/gpu/``), read into table rows.

Each run folder holds one ``callN-results.json`` per device call, each a superset of the one
before, and the logs of each call. Run 1's files lie at the top of ``gpu/``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# A run's logs: one section per file, opened by "===== <path>".
_SECTION = re.compile(r"^===== (\S+)", re.M)
_PUBLISHED = re.compile(r"^published ([\d,]+)", re.M)


@dataclass(frozen=True)
class Measure:
    """One way of driving the engine, as its table row shows it."""

    label: str
    rps: float
    tokens: float
    steady: float | None = None
    latency: str = ""


@dataclass(frozen=True)
class Run:
    """The raw files of one run: its last call's results and the text of every call's logs."""

    data: dict[str, Any]
    logs: str

    @classmethod
    def load(cls, folder: Path, last_call: str) -> Run:
        """Reads ``folder/<last_call>-results.json`` and every ``call*-logs.txt`` there."""
        data = json.loads((folder / f"{last_call}-results.json").read_text(encoding="utf-8"))
        logs = "\n".join(
            path.read_text(encoding="utf-8", errors="replace")
            for path in sorted(folder.glob("call*-logs.txt"))
        )
        return cls(data, logs)

    def sections(self, suffix: str) -> dict[str, str]:
        """The last log section of each path ending in ``suffix``, keyed by that path."""
        parts = _SECTION.split(self.logs)
        return {
            parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2) if parts[i].endswith(suffix)
        }

    def published(self, phase: str) -> int:
        """Requests the last publish of an end-to-end phase wrote (its ``e2e.log``)."""
        text = self.sections(f"/e2e/{phase}/e2e.log")
        counts = _PUBLISHED.findall(next(iter(text.values()), ""))
        return int(counts[-1].replace(",", "")) if counts else 0

    def offline(self, label: str, run: str = "noschema") -> Measure:
        """``vllm bench throughput``'s loop on the run's token ids."""
        one = self.data["offline"]["runs"][run]
        return Measure(
            label.format(n=one["requests"]), one["requests_per_s"], one["output_tokens_per_s"]
        )

    def serve(self, label: str, concurrency: int) -> Measure:
        """One point of ``vllm bench serve``'s sweep (it streams every token)."""
        point = next(p for p in self.data["serve"]["points"] if p["max_concurrency"] == concurrency)
        latency = f"{point['median_e2el_ms'] / 1000:.1f} s (median)"
        return Measure(
            label, point["request_throughput"], point["output_throughput"], None, latency
        )

    def best_serve(self) -> float:
        """The best request rate of the run's ``vllm bench serve`` points."""
        return max(float(p["request_throughput"]) for p in self.data["serve"]["points"])

    def direct(self, label: str, name: str) -> Measure:
        """The worker's HTTP client driving vLLM at a fixed concurrency, no Kafka."""
        one = self.data["direct"][name]
        lat = one["latency_s"]
        return Measure(
            label.format(n=one["count"]),
            one["requests_per_s"],
            one["output_tokens_per_s"],
            None,
            _seconds(lat["p50"], lat["p95"]),
        )

    def e2e(self, label: str, phase: str) -> Measure:
        """An end-to-end phase through Kafka and the worker, from the results file."""
        one = self.data["e2e"][phase]
        call = self.data["summary"]["latency_s"][phase]["engine_call"]
        counts = _counts(one["results"], self.published(phase))
        return Measure(
            label.format(n=counts, s=one["wall_from_start_s"]),
            one["rps_from_start"],
            one["out_tok_per_s_from_start"],
            one["rps_steady_10_90"],
            _seconds(call["p50"], call["p95"]),
        )

    def e2e_log(self, label: str, phase: str) -> Measure:
        """An end-to-end phase kept only in the logs (the collector's JSON summary)."""
        text = self.sections(f"/logs/e2e-{phase}.log")[f"/tmp/bench/logs/e2e-{phase}.log"]
        one = json.loads(text)
        return Measure(
            label.format(n=_counts(one["results"], self.published(phase))),
            one["requests_per_s_from_start"],
            one["output_tokens_per_s_from_start"],
            one["requests_per_s_steady_10_90"],
        )


def _counts(results: int, published: int) -> str:
    return f"{results:,}" if results >= published else f"{results:,} of {published:,}"


def _seconds(p50: float, p95: float) -> str:
    digits = 0 if p50 >= 20 else 1
    return f"{p50:.{digits}f} / {p95:.{digits}f} s"
