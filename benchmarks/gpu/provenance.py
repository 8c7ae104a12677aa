"""Where a raw result came from: commit, machine, versions and the command (standard library).

Every raw file the kit writes embeds ``provenance()``, so a figure can be traced to the tree,
the card and the software that gave it. The device has no git directory: the caller passes
``GIT_COMMIT`` and ``GIT_DIRTY`` (``benchmarks/gpu/README.md`` says how); without them the
record says ``unknown`` instead of guessing.

    python3 provenance.py OUT.json      # writes the record (run-on-device.sh, every call)
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchlib import write_json

PACKAGES = ("vllm", "torch", "transformers", "xgrammar", "llguidance", "confluent-kafka")
# The knobs of run-on-device.sh that change what a run measures.
KNOBS = (
    "MODEL", "ENGINES", "ENGINE_MEM", "SO_BACKEND", "API_SERVERS", "VLLM_SERVE_EXTRA",
    "N_SCHEMA", "N_NOSCHEMA", "N_ADAPTIVE", "N_OFFLINE_SCHEMA", "N_E2E", "PARTITIONS",
    "SCHEMA_MAX_TOKENS", "TWO_GPUS", "BUDGET",
)  # fmt: skip


def _gpus() -> list[dict[str, str]]:
    query = "name,memory.total,driver_version,pci.bus_id"
    try:
        text = subprocess.run(
            ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    keys = query.split(",")
    return [dict(zip(keys, (v.strip() for v in line.split(",")), strict=False)) for line in
            text.strip().splitlines()]  # fmt: skip


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def provenance() -> dict[str, Any]:
    """The record: commit, dirty flag, GPUs (name, memory, driver), versions, command, knobs."""
    return {
        "commit": os.environ.get("GIT_COMMIT", "unknown"),
        "dirty": os.environ.get("GIT_DIRTY", "unknown"),
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "gpus": _gpus(),
        "python": platform.python_version(),
        "versions": {p: _version(p) for p in PACKAGES},
        "command": os.environ.get("BENCH_COMMAND") or " ".join(sys.argv),
        "script": " ".join(sys.argv),
        "knobs": {k: os.environ[k] for k in KNOBS if k in os.environ},
    }


if __name__ == "__main__":
    write_json(Path(sys.argv[1]), provenance())
