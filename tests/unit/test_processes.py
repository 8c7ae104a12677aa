"""Pausing a child process: ``stop`` returns only once every thread has stopped."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from evalstream_local import processes

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

# A child with several threads, all busy: a group stop has to catch each of them.
_SPINNERS = (
    "import threading\n"
    "def spin():\n"
    "    while True: pass\n"
    "for _ in range(4): threading.Thread(target=spin, daemon=True).start()\n"
    "print('ready', flush=True)\n"
    "spin()\n"
)


@pytest.fixture
def spinning_child() -> Iterator[subprocess.Popen[str]]:
    command = [sys.executable, "-c", _SPINNERS]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline() == "ready\n"
            yield child
        finally:
            processes.cont(child.pid)
            child.kill()


@pytest.mark.timeout(60)
def test_stop_returns_once_every_thread_is_stopped(spinning_child: subprocess.Popen[str]) -> None:
    assert len(processes.thread_states(spinning_child.pid)) == 5

    processes.stop(spinning_child.pid)

    assert processes.thread_states(spinning_child.pid) == ["T"] * 5


@pytest.mark.timeout(60)
def test_cont_returns_once_no_thread_is_stopped(spinning_child: subprocess.Popen[str]) -> None:
    processes.stop(spinning_child.pid)

    processes.cont(spinning_child.pid)

    assert "T" not in processes.thread_states(spinning_child.pid)


def test_a_process_that_is_gone_has_no_threads_to_wait_for() -> None:
    with subprocess.Popen([sys.executable, "-c", "pass"]) as child:
        child.wait()

    assert processes.thread_states(child.pid) == []
