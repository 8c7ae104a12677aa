"""BENCHMARKS §4's tables, from the window sweeps' raw files."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
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


def _load(results: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((results / name).read_text(encoding="utf-8"))
    return data


def _record(data: dict[str, Any]) -> str:
    """Commit and date of a record; a tree with uncommitted changes is marked, with them."""
    source = data["machine"]["source"]
    changes = source.get("uncommitted") or []
    dirty = ", DIRTY TREE: " + "; ".join(changes) if changes or source.get("dirty") else ""
    return f"commit {source['commit'][:7]}{dirty}, {data['machine']['date'][:10]}"


def _adaptive(data: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = next(r for r in data["rows"] if r["config"] == "adaptive")
    return row


def _limits(data: dict[str, Any]) -> str:
    return " → ".join(f"{x:,}" for x in _adaptive(data)["window_moves"]["limits"])


# The figures a sweep table can show, one row each: label and the cell of one config.
_FIGURES: dict[str, tuple[str, Callable[[dict[str, Any]], str]]] = {
    "steady": (
        "requests/s (steady 10-90%)",
        lambda r: f"{r['requests_per_s']['steady_10_90']:.1f}",
    ),
    "late": ("requests/s (late 50-90%)", lambda r: f"{r['requests_per_s']['late_50_90']:.1f}"),
    "worker": (
        "in-worker latency p50/p95 s",
        lambda r: "{p50:.1f}/{p95:.1f}".format(**r["latency_s"]["in_worker_s"]),
    ),
    "engine": (
        "engine latency p50/p95 s",
        lambda r: "{p50:.2f}/{p95:.2f}".format(**r["latency_s"]["inference_s"]),
    ),
    "engine50": ("engine latency p50 s", lambda r: f"{r['latency_s']['inference_s']['p50']:.2f}"),
}


def sweep_table(results: Path, name: str, figures: Sequence[str], bold_best: bool) -> str:
    """One sweep's configs as columns, ``figures`` as rows, then its ratios and record."""
    data = _load(results, name)
    rows, steady = data["rows"], data["ratios"]["steady_10_90"]
    heads = [r["config"].removeprefix("fixed-") for r in rows]
    lines = [
        "| window | " + " | ".join(heads) + " |",
        "| --- |" + " ---: |" * len(heads),
    ]
    for key in figures:
        label, cell = _FIGURES[key]
        cells = [cell(r) for r in rows]
        if key == "steady" and bold_best:
            cells = [
                f"**{c}**" if r["config"] == steady["best_fixed"] else c
                for c, r in zip(cells, rows, strict=True)
            ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    late = data["ratios"]["late_50_90"]
    lines += [
        "",
        f"Adaptive ÷ best fixed ({steady['best_fixed']}): {steady['adaptive_over_best_fixed']:.2f} "
        f"steady, {late['adaptive_over_best_fixed']:.2f} late; ÷ {steady['smallest_fixed']}: "
        f"{steady['adaptive_over_smallest_fixed']:.2f}; HTTP 503 per result "
        f"{data['ratios']['adaptive_503_per_result']:.2f}; window limits {_limits(data)} "
        f"(`{name}`, {_record(data)}).",
    ]
    return "\n".join(lines)


def policy_table(results: Path, runs: Sequence[tuple[str, str]]) -> str:
    """One row per (label, raw file): the best fixed window against the adaptive one."""
    lines = [
        "| policy | best fixed: steady / late | adaptive: steady 10-90% / late 50-90% | "
        "adaptive ÷ best fixed | window limits | engine p50 (adaptive) | record |",
        "| --- | ---: | ---: | ---: | --- | ---: | --- |",
    ]
    for label, name in runs:
        data = _load(results, name)
        steady, late = data["ratios"]["steady_10_90"], data["ratios"]["late_50_90"]
        best = next(r for r in data["rows"] if r["config"] == steady["best_fixed"])
        adaptive = _adaptive(data)

        def rates(row: dict[str, Any]) -> str:
            rps = row["requests_per_s"]
            return f"{rps['steady_10_90']:.1f} / {rps['late_50_90']:.1f}"

        lines.append(
            f"| {label} | {best['config']}: {rates(best)} | {rates(adaptive)} | "
            f"{steady['adaptive_over_best_fixed']:.2f} / {late['adaptive_over_best_fixed']:.2f} | "
            f"{_limits(data)} | {adaptive['latency_s']['inference_s']['p50']:.2f} s | "
            f"`{name}`, {_record(data)} |"
        )
    return "\n".join(lines)


def vllm_sweep_table(results: Path) -> str:
    """The full vLLM-profile sweep of 2026-11-29 (``window_vllm.json``)."""
    return sweep_table(results, "window_vllm.json", ("steady", "worker", "engine"), True)


def vllm_gain3_table(results: Path) -> str:
    """The re-run with the 3% policy (``window_vllm_gain3.json``, from a dirty tree)."""
    return sweep_table(results, "window_vllm_gain3.json", ("steady", "late"), False)


def ollama_sweep_table(results: Path) -> str:
    """The Ollama-profile sweep (``window_ollama.json``)."""
    return sweep_table(results, "window_ollama.json", ("steady", "engine50"), False)


_BEFORE = "before (x1.5 steps, looser rule down)"


def vllm_long_table(results: Path) -> str:
    """Old and new policy over 120 s against a window of 512."""
    runs = ((_BEFORE, "window_vllm_long_oldpolicy.json"), ("**now**", "window_vllm_long.json"))
    return policy_table(results, runs)


def vllm_nostream_table(results: Path) -> str:
    """Old and new policy over 40 s against windows of 128 and 512."""
    runs = (
        (_BEFORE, "window_vllm_nostream_oldpolicy.json"),
        ("**now**", "window_vllm_nostream.json"),
    )
    return policy_table(results, runs)


def ollama_descent_table(results: Path) -> str:
    """Old and new policy descending the Ollama profile's flat curve."""
    runs = (
        (_BEFORE, "window_ollama_descent_oldpolicy.json"),
        ("**now**", "window_ollama_descent.json"),
    )
    return policy_table(results, runs)


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
            f"{ratios['interactive_p50_load_over_idle']:.2f} | "
            f"{idle['p95_s']:.2f} / {load['p95_s']:.2f} | "
            f"{ratios['interactive_p95_load_over_idle']:.2f} | "
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
