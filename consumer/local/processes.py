"""Child processes of the demo and the tests: started, awaited, always cleaned up.

A service announces itself on its first stdout line (``bootstrap=...``, ``url=...``);
`ManagedProcess.start` waits for that line, so no caller sleeps in place of it.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType


class ManagedProcess:
    """A child process with a bounded start and a stop that never leaves it behind.

    Args:
        args: the command.
        env: extra environment variables.
        log_path: where its stderr (and stdout after the first line) goes.
    """

    def __init__(
        self,
        args: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.args = list(args)
        self._env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @classmethod
    def python(cls, module: str, *args: str, **kwargs: object) -> ManagedProcess:
        """``python -m module args`` with the current interpreter."""
        return cls([sys.executable, "-m", module, *args], **kwargs)  # type: ignore[arg-type]

    def start(self, announce: str | None = None, timeout: float = 120.0) -> str:
        """Starts the process; with ``announce``, waits for a first line ``announce=VALUE``.

        Returns:
            VALUE, or "" without ``announce``.

        Raises:
            RuntimeError: the process exited or did not announce itself in time.
        """
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                self.args,
                stdout=subprocess.PIPE if announce else log,
                stderr=log,
                env=self._env,
                start_new_session=True,  # its own group: stop() reaches its children too
            )
        finally:
            if not isinstance(log, int):
                log.close()  # the child holds its own descriptor
        if announce is None:
            return ""
        return self._read_announcement(announce, timeout)

    def _read_announcement(self, announce: str, timeout: float) -> str:
        assert self.process is not None
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        stdout = self.process.stdout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([stdout], [], [], 0.2)
            if ready:
                line = stdout.readline().decode().strip()
                if line.startswith(f"{announce}="):
                    return line.split("=", 1)[1]
                if not line and self.process.poll() is not None:
                    break
            elif self.process.poll() is not None:
                break
        code = self.process.poll()
        self.stop()
        raise RuntimeError(
            f"{self.args[:4]} did not announce {announce}= (exit code {code}); see {self.log_path}"
        )

    @property
    def pid(self) -> int:
        """The process id."""
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        """Whether it is still running."""
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: int) -> None:
        """Sends ``sig`` to the process group."""
        if self.alive():
            assert self.process is not None
            os.killpg(self.process.pid, sig)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        self.signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait()

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL; returns the exit code."""
        if self.process is None:
            return None
        if self.alive():
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Waits for it to exit by itself."""
        assert self.process is not None
        return self.process.wait(timeout)

    def __enter__(self) -> ManagedProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
