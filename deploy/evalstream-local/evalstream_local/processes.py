"""Child processes of the demo and the tests: started, awaited, paused, always cleaned up.

A service announces itself on its first stdout line (``bootstrap=...``, ``url=...``);
`ManagedProcess.start` waits for that line, so no caller sleeps in place of it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
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


_PR_SET_PDEATHSIG = 1
_POLL_S = 0.005


class ProcessStateTimeout(RuntimeError):
    """A process did not reach the state it was signalled into within the time allowed."""


def die_with_parent_hook() -> Callable[[], None] | None:
    """Returns a ``preexec_fn`` that makes the child die with its parent (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    # Looked up here, in the parent: loading a library in the forked child is not safe.
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
        # The parent may have died between fork and prctl; no signal would ever come then.
        if os.getppid() != parent:
            os._exit(1)

    return hook


def thread_states(pid: int) -> list[str]:
    """The scheduler state letter (``R``, ``S``, ``T``...) of each thread of ``pid``; Linux only."""
    states = []
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        with contextlib.suppress(OSError):  # a thread that exits while we read
            text = stat.read_text()
            # "tid (comm) S ...": the command may hold spaces and parentheses, the state follows
            # the last closing one.
            states.append(text[text.rindex(")") + 2])
    return states


def stop(pid: int, timeout: float = 10.0) -> None:
    """Sends SIGSTOP and returns once every thread of the process has stopped.

    ``kill`` only queues the signal: until each thread is next scheduled, the process may still
    read a request and answer it. Waiting for the group stop makes "paused" mean paused.
    """
    os.kill(pid, signal.SIGSTOP)
    # A thread that has exited but not yet been reaped (Z, X) runs no more than a stopped one.
    _wait_for(pid, lambda states: all(state in "TZX" for state in states), "stopped", timeout)


def cont(pid: int, timeout: float = 10.0) -> None:
    """Sends SIGCONT and returns once no thread of the process is stopped any longer."""
    os.kill(pid, signal.SIGCONT)
    _wait_for(pid, lambda states: "T" not in states, "continued", timeout)


def _wait_for(pid: int, reached: Callable[[list[str]], bool], state: str, timeout: float) -> None:
    if not sys.platform.startswith("linux"):
        return
    deadline = time.monotonic() + timeout
    while True:
        states = thread_states(pid)
        if not states or reached(states):  # no threads: the process is gone, nothing to wait for
            return
        if time.monotonic() >= deadline:
            raise ProcessStateTimeout(
                f"process {pid} not {state} after {timeout:.0f} s (thread states {''.join(states)})"
            )
        time.sleep(_POLL_S)
