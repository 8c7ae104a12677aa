"""BENCHMARKS §4's tables, from the window sweeps' raw files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _row(row: dict[str, Any]) -> str:
    rates, engine = row["requests_per_s"], row["latency_s"]["inference_s"]
    name = row["config"].replace("-", " ")
    if name == "adaptive":
        name = "**adaptive (default start 32)**"
    return (
        f"| {name} | {row['results']:,} | {rates['steady_10_90']:.1f} | "
        f"{rates['late_50_90']:.1f} | {engine['p50']:.2f} / {engine['p95']:.2f} |"
    )


def occupancy_table(results: Path) -> str:
    """The engine-following window against fixed windows (``window_vllm_occupancy.json``)."""
    data = json.loads((results / "window_vllm_occupancy.json").read_text(encoding="utf-8"))
    shown = ("fixed-8", "fixed-64", "fixed-128", "fixed-256", "fixed-512", "adaptive")
    rows = [row for row in data["rows"] if row["config"] in shown]
    ratios = data["ratios"]
    lines = [
        "| config | results in 40 s | steady 10-90 % req/s | late 50-90 % req/s | "
        "engine p50 / p95 s |",
        "| --- | ---: | ---: | ---: | ---: |",
        *(_row(row) for row in rows),
        "",
        f"Adaptive ÷ best fixed ({ratios['steady_10_90']['best_fixed']}): "
        f"**{ratios['steady_10_90']['adaptive_over_best_fixed']:.2f}** steady, "
        f"{ratios['late_50_90']['adaptive_over_best_fixed']:.2f} late; window limits "
        + " → ".join(
            f"{x:,}"
            for x in next(r for r in data["rows"] if r["config"] == "adaptive")["window_moves"][
                "limits"
            ]
        )
        + f" (commit {data['machine']['source']['commit'][:7]}"
        + (", DIRTY TREE" if data["machine"]["source"]["uncommitted"] else "")
        + ").",
    ]
    return "\n".join(lines)


def cache_table(results: Path) -> str:
    """The result cache's two passes (``cache_passes.json``)."""
    data = json.loads((results / "cache_passes.json").read_text(encoding="utf-8"))
    lines = [
        "| run | pass | results | seconds | results/s | engine calls | pass 2 ÷ pass 1 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in data["runs"]:
        name = "worker restarted between passes" if run["restart_between_passes"] else "one worker"
        for one in run["passes"]:
            ratio = f"{run['second_over_first']:.1f}" if one["pass"] == 2 else ""
            lines.append(
                f"| {name} | {one['pass']} | {one['results']:,} | {one['seconds']:.1f} | "
                f"{one['results_per_s']:,.0f} | {one['engine_calls']:,} | {ratio} |"
            )
    source = data["machine"]["source"]
    dirty = ", DIRTY TREE" if source.get("dirty") else ""
    lines += ["", f"(commit {source['commit'][:7]}{dirty}, {data['machine']['date'][:10]})"]
    return "\n".join(lines)


def lanes_table(results: Path) -> str:
    """The interactive lane under a saturating bulk backlog (``lanes.json``)."""
    data = json.loads((results / "lanes.json").read_text(encoding="utf-8"))
    lane, ratios = data["lane"], data["ratios"]
    lines = [
        "| measure | idle engine | bulk backlog | backlog ÷ idle |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, key in (("p50", "p50_s"), ("p95", "p95_s"), ("max", "max_s")):
        idle, load = lane["idle"][key], lane["load"][key]
        lines.append(
            f"| interactive end-to-end {name}, s | {idle:.2f} | {load:.2f} | {load / idle:.2f} |"
        )
    lines += [
        "",
        "| bulk results/s, same seconds | with the lane's traffic | without the lane | ratio |",
        "| --- | ---: | ---: | ---: |",
        f"| {lane['seconds']:.0f} s after a {data.get('warmup_s', 20):.0f}-s warm-up | "
        f"{lane['bulk_results_per_s']:.1f} | {data['no_lane']['bulk_results_per_s']:.1f} | "
        f"{ratios['bulk_with_lane_over_without']:.2f} |",
    ]
    source = data["machine"]["source"]
    dirty = ", DIRTY TREE" if source.get("dirty") else ""
    count = lane["load"]["count"]
    lines += [
        "",
        f"({count} interactive requests per phase, one a second; backlog {data['backlog']:,}; "
        f"commit {source['commit'][:7]}{dirty}, {data['machine']['date'][:10]})",
    ]
    return "\n".join(lines)
