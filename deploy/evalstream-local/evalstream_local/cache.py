"""The local caches' shared discipline: one builder at a time, and a marker once complete.

An entry of a cache (the broker's jars; the test engines beside the package) is complete when
its marker holds the digest of what built it; a lock file per directory serialises builders.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

MARKER = ".complete"


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Holds ``directory/.lock`` exclusively (creating the directory): one builder at a time."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
