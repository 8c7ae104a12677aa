"""The producer tools against a broker that is away or named by the environment: one line each.

A closed port answers every connection attempt with a refusal at once, so librdkafka would log
a ``FAIL`` line per attempt; each command must say it once, exit 1 and write nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.test_producer_publish_cli import REPO_ROOT

CLOSED = "127.0.0.1:1"  # nothing listens on port 1 here (tcpmux is long gone)
UNREACHABLE = (
    f"error: cannot reach Kafka at {CLOSED} within 5 s "
    "(Connect to ipv4#127.0.0.1:1 failed: Connection refused)\n"
)
WAIT_S = 120.0

pytestmark = pytest.mark.integration


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m producer`` with no bootstrap variable inherited, plus ``env``."""
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in {"KAFKA_BOOTSTRAP", "EVALSTREAM_KAFKA__BOOTSTRAP_SERVERS"}
    }
    return subprocess.run(
        [sys.executable, "-m", "producer", *args],
        cwd=REPO_ROOT,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=WAIT_S,
        check=False,
    )


@pytest.mark.timeout(150)
@pytest.mark.parametrize(
    "args",
    [
        ["collect", "--out", "{out}", "--expect", "10"],
        ["status", "--group", "g", "--interval", "0"],
        ["topics", "describe"],
    ],
    ids=["collect", "status", "topics-describe"],
)
def test_an_unreachable_broker_is_one_line_and_exit_1(args: list[str], tmp_path: Path) -> None:
    out = tmp_path / "results.sqlite"
    started = time.monotonic()
    run = run_cli(*(arg.format(out=out) for arg in args), "--bootstrap-servers", CLOSED)
    assert time.monotonic() - started < 30  # seconds, not the idle limit or a hang
    assert (run.returncode, run.stderr, run.stdout) == (1, UNREACHABLE, "")
    assert not out.exists()


@pytest.mark.timeout(150)
def test_the_worker_variable_names_the_broker_and_the_old_one_still_works(
    kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory(2)
    run = run_cli(
        "topics", "describe", topic, env={"EVALSTREAM_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap}
    )
    assert (run.returncode, run.stderr) == (0, "")
    assert f"{topic}: 2 partitions" in run.stdout
    old = run_cli("topics", "describe", topic, env={"KAFKA_BOOTSTRAP": kafka_bootstrap})
    assert old.returncode == 0, old.stderr
    assert old.stderr == (
        "warning: $KAFKA_BOOTSTRAP is deprecated; "
        "set $EVALSTREAM_KAFKA__BOOTSTRAP_SERVERS instead (the worker reads it too)\n"
    )
    assert f"{topic}: 2 partitions" in old.stdout
