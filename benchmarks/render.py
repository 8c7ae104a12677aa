"""Renders the results tables of README.md and BENCHMARKS.md from the raw files.

A table lives between ``<!-- render:NAME -->`` and ``<!-- /render:NAME -->`` in a document;
its rows come from `TABLES[NAME]`, a function of the raw-results folder. Prose stays
hand-written; numbers in a marked table are never typed by hand.

    python -m benchmarks.render            # rewrite the marked tables in place
    python -m benchmarks.render --check    # exit 1, with a diff, where a document differs
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import render_cpu
    import render_engines
    import render_faults
    import render_gpu
    import render_ollama
    import render_production
    import render_windows
else:  # benchmarks/ is not a package: mypy and python name these modules differently
    render_cpu = importlib.import_module("benchmarks.render_cpu")
    render_engines = importlib.import_module("benchmarks.render_engines")
    render_faults = importlib.import_module("benchmarks.render_faults")
    render_gpu = importlib.import_module("benchmarks.render_gpu")
    render_ollama = importlib.import_module("benchmarks.render_ollama")
    render_production = importlib.import_module("benchmarks.render_production")
    render_windows = importlib.import_module("benchmarks.render_windows")

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ("README.md", "BENCHMARKS.md")
TABLES: dict[str, Callable[[Path], str]] = {
    "faults": render_faults.table,
    "gpu-run7": render_engines.run7_table,
    "gpu-run7-provenance": render_engines.run7_provenance,
    "gpu-run7-summary": render_engines.run7_summary,
    "gpu-run5": render_production.run5_table,
    "gpu-run5-projection": render_production.projection_table,
    "gpu-run6-ollama": render_ollama.side_by_side_table,
    "gpu-run6-ollama-probe": render_ollama.probe_table,
    "gpu-run6-ollama-summary": render_ollama.summary_table,
    "gpu-run4": render_gpu.run4_table,
    "gpu-run3": render_gpu.run3_table,
    "gpu-run2": render_gpu.run2_table,
    "gpu-run1": render_gpu.run1_table,
    "window-occupancy": render_windows.occupancy_table,
    "cache-passes": render_windows.cache_table,
    "lanes": render_windows.lanes_table,
    "window-vllm-sweep": render_windows.vllm_sweep_table,
    "window-vllm-gain3": render_windows.vllm_gain3_table,
    "window-vllm-long": render_windows.vllm_long_table,
    "window-vllm-nostream": render_windows.vllm_nostream_table,
    "window-ollama-sweep": render_windows.ollama_sweep_table,
    "window-ollama-descent": render_windows.ollama_descent_table,
    "cpu-overhead": render_cpu.overhead_table,
    "exactly-once": render_cpu.exactly_once_table,
    "http-clients": render_cpu.http_clients_table,
    "real-replies-v3": render_cpu.real_replies_table,
}
_BLOCK = re.compile(r"(<!-- render:([\w-]+) -->\n)(.*?)(<!-- /render:\2 -->)", re.S)


def render(text: str, results: Path) -> str:
    """``text`` with every marked table rendered afresh from ``results``.

    Raises:
        KeyError: a marker names a table that no renderer knows.
    """

    def fill(match: re.Match[str]) -> str:
        body = TABLES[match.group(2)](results).rstrip("\n") + "\n"
        return match.group(1) + body + match.group(4)

    return _BLOCK.sub(fill, text)


def main(argv: Sequence[str] | None = None, root: Path = ROOT) -> int:
    """Renders (or with ``--check`` compares) the documents under ``root``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.render", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail where a document differs")
    args = parser.parse_args(argv)
    results, differs = root / "benchmarks" / "results", False
    for name in DOCUMENTS:
        path = root / name
        before = path.read_text(encoding="utf-8")
        after = render(before, results)
        if after == before:
            continue
        if not args.check:
            path.write_text(after, encoding="utf-8")
            print(f"rendered {name}")
            continue
        differs = True
        diff = difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            f"{name} (committed)",
            f"{name} (rendered from benchmarks/results)",
        )
        sys.stdout.writelines(diff)
    if differs:
        print(
            "tables differ from their raw files: run python -m benchmarks.render", file=sys.stderr
        )
    return 1 if differs else 0


if __name__ == "__main__":
    sys.exit(main())
