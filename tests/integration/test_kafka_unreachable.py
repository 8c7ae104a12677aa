"""A worker whose broker cannot be reached says so clearly, once in a while, and is not ready."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.integration.pipeline import SIM_MODEL, free_port, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

REPO_ROOT = Path(__file__).resolve().parents[2]
OBSERVED_S = 20.0  # the span whose log volume is measured


def readyz(port: int) -> tuple[int, str]:
    try:
        reply = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
    except httpx.HTTPError:
        return 0, ""
    return reply.status_code, reply.text


def test_an_unreachable_broker_is_named_in_few_lines_and_in_readyz(
    tmp_path: Path, engine_factory: Callable[..., str]
) -> None:
    engine = engine_factory()
    closed, metrics = free_port(), free_port()  # nothing listens on `closed`
    log = tmp_path / "worker.log"
    command = [sys.executable, "-m", "consumer", "--bootstrap-servers", f"127.0.0.1:{closed}"]
    command += ["--engine-url", engine, "--model", SIM_MODEL, "--metrics-port", str(metrics)]
    with log.open("w") as out:
        worker = subprocess.Popen(command, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        started = time.monotonic()
        named = wait_until(lambda: "cannot reach Kafka" in readyz(metrics)[1], 60)
        status, reason = readyz(metrics)
        # The volume over a fixed span is the measurement itself, not a synchronisation.
        time.sleep(max(0.0, OBSERVED_S - (time.monotonic() - started)))
        lines = log.read_text(errors="replace").splitlines()
    finally:
        worker.terminate()
        worker.wait(30)

    kafka_lines = [x for x in lines if "consumer.kafka" in x or x.startswith("%")]
    print(f"\n{len(kafka_lines)} Kafka log lines in {OBSERVED_S:.0f} s:", *kafka_lines, sep="\n")
    assert named, lines[-20:]
    assert status == 503
    assert f"127.0.0.1:{closed}" in reason
    assert not [x for x in lines if x.startswith("%")]  # no raw librdkafka line
    assert 1 <= len(kafka_lines) <= 10
    assert any(f"cannot reach Kafka at 127.0.0.1:{closed}" in x for x in kafka_lines)
