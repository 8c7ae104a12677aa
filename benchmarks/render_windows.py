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
    lines = [
        "| lane settings | interactive p50 idle / backlog, s | p50 ÷ idle | "
        "interactive p95 idle / backlog, s | p95 ÷ idle | bulk results/s | bulk ÷ no lane |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, lane in data["lanes"].items():
        idle, load, ratios = lane["idle"], lane["load"], lane["ratios"]
        lines.append(
            f"| {_lane_label(name, lane)} | {idle['p50_s']:.2f} / {load['p50_s']:.2f} | "
            f"{ratios['interactive_p50_load_over_idle']:.1f} | "
            f"{idle['p95_s']:.2f} / {load['p95_s']:.2f} | "
            f"{ratios['interactive_p95_load_over_idle']:.1f} | "
            f"{lane['bulk_results_per_s']:.1f} | {ratios['bulk_with_lane_over_without']:.2f} |"
        )
    no_lane = data["no_lane"]
    lines.append(f"| no lane | | | | | {no_lane['bulk_results_per_s']:.1f} | 1.00 |")
    source = data["machine"]["source"]
    dirty = ", DIRTY TREE" if source.get("dirty") else ""
    count = next(iter(data["lanes"].values()))["load"]["count"]
    lines += [
        "",
        f"({count} interactive requests per phase, one a second; backlog {data['backlog']:,}; "
        f"bulk rates over the same {no_lane['seconds']:.0f} s after a "
        f"{data['warmup_s']:.0f}-s warm-up; commit {source['commit'][:7]}{dirty}, "
        f"{data['machine']['date'][:10]})",
    ]
    return "\n".join(lines)


def _lane_label(name: str, lane: dict[str, object]) -> str:
    """The settings of one measured variant, as a reader would set them."""
    settings = lane.get("settings") or {}
    assert isinstance(settings, dict)
    parts = [
        f"`{k.removeprefix('EVALSTREAM_').lower().replace('__', '.')}={v}`"
        for k, v in settings.items()
    ]
    engine = " ".join(lane.get("engine") or [])  # type: ignore[arg-type]
    if engine:
        parts.append(f"engine `{engine}`")
    return ", ".join(parts) or "defaults"
