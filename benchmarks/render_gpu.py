"""BENCHMARKS §1's pass-through tables (runs 1-3), from the GPU runs' raw files.

Each run folder holds one ``callN-results.json`` per device call, each a superset of the one
before, and the logs of each call. Run 1's files lie at the top of ``gpu/``. Every ratio is
taken between two figures of the same run folder: the machines of the runs differ.
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gpu_run import Measure, Run
else:  # benchmarks/ is not a package: mypy and python name these modules differently
    _gpu_run = importlib.import_module("benchmarks.gpu_run")
    Measure, Run = _gpu_run.Measure, _gpu_run.Run

_OFFLINE = "offline ceiling (`vllm bench throughput` loop on our token ids, {n:,} at once)"


def _bold(text: str, on: bool) -> str:
    return f"**{text}**" if on else text


def _ratio(m: Measure, base: float, steady: bool, bold: bool) -> str:
    cell = _bold(f"{m.rps / base:.2f}", bold)
    return cell + (f" ({m.steady / base:.2f})" if steady and m.steady is not None else "")


def row(
    m: Measure, offline: float, serve: float, latency: bool, bold: str = "", steady: bool = True
) -> str:
    """One table row; ``bold`` names the cells to embolden (``r`` rate, ``o``/``s`` ratios)."""
    rate = _bold(f"{m.rps:.2f}", "r" in bold) + (
        f" (steady {m.steady:.2f})" if m.steady is not None else ""
    )
    cells = [m.label, rate, f"{m.tokens:,.0f}"]
    if latency:
        cells.append(m.latency)
    cells += [_ratio(m, offline, steady, "o" in bold), _ratio(m, serve, steady, "s" in bold)]
    return "| " + " | ".join(cells) + " |"


def header(latency: bool) -> list[str]:
    """The header of a run's table, with or without the latency column."""
    if latency:
        return [
            "| how the engine was driven | requests/s | output tok/s | latency p50 / p95 | "
            "÷ offline | ÷ best serve |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
    return [
        "| how the engine was driven | requests/s | output tok/s | ÷ offline | ÷ best serve |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]


def _table(run: Run, latency: bool, rows: list[tuple[Measure, str, bool]]) -> list[str]:
    """Header and rows; every ratio is to the run's own offline ceiling and best serve point."""
    offline, serve = run.offline("{n}").rps, run.best_serve()
    return [*header(latency), *(row(m, offline, serve, latency, b, s) for m, b, s in rows)]


def run3_table(results: Path) -> str:
    """Run 3: streaming against whole replies, and the worker's windows (``gpu/run3``)."""
    run = Run.load(results / "gpu" / "run3", "call5")
    same = "the same, {c} concurrent ({{n:,}})"
    rows = [
        (run.offline(_OFFLINE), "", True),
        (
            run.serve(
                "`vllm bench serve`, 128 concurrent (its best in runs 1-2; streams every token)",
                128,
            ),
            "",
            True,
        ),
        (
            run.direct(
                "direct, no Kafka: the worker's HTTP client, chat, 128 concurrent ({n:,})",
                "direct chat c=128",
            ),
            "",
            True,
        ),
        (run.direct(same.format(c=256), "direct chat c=256"), "", True),
        (run.direct(same.format(c=512), "direct chat c=512"), "", True),
        (run.e2e("**evalstream through Kafka, fixed window 512** ({n})", "fixed512"), "ros", True),
        (
            run.e2e(
                "evalstream through Kafka, adaptive window ({n} within the call's time)", "noschema"
            ),
            "",
            True,
        ),
        (
            run.e2e(
                "evalstream, fixed window 8 (the prototype's 8 parallel workers; {n} in {s:.0f} s)",
                "fixed8",
            ),
            "",
            False,
        ),
    ]
    schema = run.e2e(
        "evalstream with the JSON schema, fixed window 256 ({n} in {s:.0f} s)", "schema-fixed256"
    )
    ceiling = run.offline("{n}", "schema").rps  # the schema's own offline rate, same machine
    last = (
        f"| {schema.label} | {schema.rps:.2f} (steady {schema.steady:.2f}) | "
        f"{schema.tokens:,.0f} | {schema.latency} | "
        f"{schema.rps / ceiling:.2f} of offline schema ({ceiling:.2f}) | |"
    )
    return "\n".join([*_table(run, True, rows), last])


def run2_table(results: Path) -> str:
    """Run 2: the serve sweep, chat against completions, windows and API servers (``gpu/run2``)."""
    run = Run.load(results / "gpu" / "run2", "call6")
    direct = "direct, no Kafka: {who}, 128 concurrent, `{endpoint}`"
    rows = [
        (run.offline(_OFFLINE), "", True),
        (run.serve("`vllm bench serve`, 64 concurrent (streams every token)", 64), "", True),
        (run.serve("`vllm bench serve`, **128 concurrent (best)**", 128), "r", True),
        (run.serve("`vllm bench serve`, 256 concurrent", 256), "", True),
        (
            run.direct(
                direct.format(who="the worker's HTTP client", endpoint="/v1/chat/completions"),
                "direct chat c=128",
            ),
            "",
            True,
        ),
        (
            run.direct(
                direct.format(who="the same client", endpoint="/v1/completions"),
                "direct completions c=128",
            ),
            "",
            True,
        ),
        (run.e2e("**evalstream through Kafka, adaptive window** ({n})", "noschema"), "ros", True),
        (
            run.e2e(
                "evalstream through Kafka, fixed window 128 ({n} before the call's time ran out)",
                "fixed128",
            ),
            "s",
            True,
        ),
        (
            run.e2e(
                "evalstream, adaptive from 128, vLLM `--api-server-count 4` ({n})", "adaptive128"
            ),
            "",
            False,
        ),
        (
            run.e2e(
                "evalstream, fixed window 8 (the prototype's 8 parallel workers; {n})", "fixed8"
            ),
            "",
            False,
        ),
    ]
    return "\n".join(_table(run, False, rows))


def run1_table(results: Path) -> str:
    """Run 1, before the fixes (``gpu/call3``-``call6``; two phases kept only in the logs)."""
    run = Run.load(results / "gpu", "call6")
    rows = [
        (run.offline(_OFFLINE), "", True),
        (run.serve("`vllm bench serve`, 64 concurrent", 64), "", True),
        (run.serve("`vllm bench serve`, **128 concurrent (best)**", 128), "r", True),
        (run.serve("`vllm bench serve`, 256 concurrent", 256), "", True),
        (run.e2e("**evalstream through Kafka, adaptive window** ({n})", "noschema"), "ros", True),
        (
            run.e2e_log(
                "evalstream through Kafka, fixed window 128 ({n}; the second of two runs)",
                "fixed128",
            ),
            "",
            True,
        ),
        (run.e2e_log("evalstream, adaptive from 128 ({n})", "adaptive128"), "", True),
        (run.e2e("evalstream, fixed window 8 ({n})", "fixed8"), "", False),
    ]
    sampled = run.data["e2e"]["noschema"]["sampled"]
    running = sampled["vllm:num_requests_running"]["mean"]
    in_flight = sampled["evalstream_in_flight_requests"]["mean"]
    note = (
        f"In the adaptive run vLLM had {running:.0f} requests running on average while the "
        f"worker counted {in_flight:.0f} in flight (means of the sampled gauges)."
    )
    return "\n".join([*_table(run, False, rows), "", note])


# vLLM's periodic engine line; the schema run's lines are the ones that count deferred requests.
_ENGINE_LINE = re.compile(
    r"(\d\d):(\d\d):(\d\d) \[loggers\.py.*generation throughput: ([\d.]+) tokens/s, "
    r"Running: (\d+) reqs, Waiting: (\d+) reqs, Deferred"
)
_ABORTED = re.compile(r"aborting in-flight requests count=(\d+)")
_CANDIDATES = 170_000  # the production backlog the one-hour bar is set for


def run4_table(results: Path) -> str:
    """Run 4, real weights offline: without the schema (results) and with it (engine log)."""
    folder = results / "gpu" / "run4"
    data = json.loads((folder / "offline-results.json").read_text(encoding="utf-8"))
    logs = (folder / "offline-logs.txt").read_text(encoding="utf-8")
    free = data["offline"]["runs"]["noschema"]
    # The first full line of the schema run still holds its ramp; the rate is read after it.
    lines = [m.groups() for m in _ENGINE_LINE.finditer(logs)]
    full = [g for g in lines if int(g[4]) >= 1000]
    first, last = full[0], full[-1]
    seconds = sum(60 ** (2 - i) * (int(last[i]) - int(first[i])) for i in range(3))
    rate = (int(first[5]) - int(last[5])) / seconds
    tokens = [float(g[3]) for g in full[1:]]
    running = [int(g[4]) for g in full]
    aborted = int(_ABORTED.findall(logs)[-1])
    return "\n".join(
        [
            "| offline run (10-s engine lines for the schema) | requests | requests/s | "
            "generated tokens/s | running | 170,000 at this rate |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
            f"| no schema (`offline-results.json`) | {free['requests']:,} | "
            f"{free['requests_per_s']:.2f} | {free['output_tokens_per_s']:,.0f} | | "
            f"{_CANDIDATES / free['requests_per_s'] / 3600:.1f} h |",
            f"| evaluation schema (`offline-logs.txt`; waiting queue {int(first[5]):,} → "
            f"{int(last[5]):,} in {seconds} s, {aborted:,} unfinished when the phase stopped) | "
            f"{data['workload']['requests']['schema']:,} | {rate:.1f} | "
            f"{min(tokens):,.0f}-{max(tokens):,.0f} | {min(running):,}-{max(running):,} | "
            f"{_CANDIDATES / rate / 3600:.1f} h |",
        ]
    )
