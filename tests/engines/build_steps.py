"""Build steps of the test engines' cache: digests, markers and locks (`evalstream_local.cache`),
logged commands, downloads from PyPI.

Every command appends to a log whose tail goes into the error when it fails.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from consumer.errors import EvalstreamError
from evalstream_local.cache import MARKER, locked

__all__ = [
    "MARKER",
    "EngineSetupError",
    "default_cache_dir",
    "digest",
    "locked",
    "log_tail",
    "pip_download",
    "ready",
    "run_step",
]


class EngineSetupError(EvalstreamError):
    """An engine or its model could not be fetched, built or started."""

    reason = "engine_setup"


def default_cache_dir() -> Path:
    """Returns the root of the engine cache."""
    return Path.home() / ".cache" / "evalstream"


def digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def ready(path: Path, marker_dir: Path, digest: str) -> bool:
    marker = marker_dir / MARKER
    return path.is_file() and marker.is_file() and marker.read_text().strip() == digest


def run_step(
    command: Sequence[str],
    log: Path,
    *,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
) -> None:
    """Runs a build step, appending its output to ``log``; raises with the log's tail."""
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(command)}\n".encode())
        out.flush()
        try:
            code = subprocess.run(
                command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                timeout=timeout, check=False,
            ).returncode  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise EngineSetupError(f"{command[0]} failed: {exc}") from exc
    if code != 0:
        raise EngineSetupError(
            f"{' '.join(command[:4])} failed with exit code {code}; the end of {log}:\n"
            + log_tail(log)
        )


def log_tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return f"(no {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def pip_download(requirement: str, dest: Path, log: Path, *pip_args: str) -> Path:
    """``pip download --no-deps`` of one distribution; returns the file."""
    dest.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", *pip_args]
    run_step([*command, "-d", str(dest), requirement], log)
    name = requirement.split("==")[0].replace("-", "_")
    found = sorted(p for p in dest.iterdir() if p.name.lower().startswith(name))
    if not found:
        raise EngineSetupError(f"pip downloaded no file for {requirement} into {dest}")
    return found[0]
