"""The README's first hour, run as written: a local broker, then its publish, worker and
collect commands through the real CLIs.

The commands are read from README.md itself ("Publish requests" and "Run a worker"); only the
addresses change: the bootstrap servers become the local broker's, the engine URL the engine
simulator's (serving the README's model name) and the metrics port a free one.
"""

from __future__ import annotations

import re
import shlex
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from evalstream_local.processes import ManagedProcess
from tests.integration.pipeline import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(__import__("sys").executable).parent  # the console scripts of this environment


def readme_block(heading: str) -> list[list[str]]:
    """The commands of the first bash block under ``heading``, continuation lines joined."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split(f"### {heading}\n", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block is not None, heading
    joined = block.group(1).replace("\\\n", " ")
    return [shlex.split(line, comments=True) for line in joined.splitlines() if line.strip()]


def localised(command: list[str], bootstrap: str, engine: str, metrics: int) -> list[str]:
    """The command with this machine's addresses (and nothing else) substituted."""
    swap = {"localhost:9092": bootstrap, "kafka:9092": bootstrap}
    swap |= {"http://localhost:8000": engine, "9400": str(metrics)}
    return [swap.get(word, word) for word in command]


@pytest.fixture
def local_broker(tmp_path: Path) -> Iterator[str]:
    """``evalstream-local kafka`` as the README starts it; its bootstrap address."""
    broker = ManagedProcess(
        [str(BIN / "evalstream-local"), "kafka"], log_path=tmp_path / "kafka.log"
    )
    yield broker.start("bootstrap", timeout=120)
    broker.stop()


def test_the_readme_publish_worker_and_collect_blocks_work_as_written(
    tmp_path: Path, local_broker: str
) -> None:
    engine_process = ManagedProcess.python(
        "evalstream_local", "engine", "--profile", "instant", "--port", "0",
        "--model", "google/gemma-3-1b-it", log_path=tmp_path / "engine.log",
    )  # fmt: skip
    engine = engine_process.start("url", timeout=60)
    metrics = free_port()
    synth, publish, collect = readme_block("Publish requests")
    (worker_command,) = readme_block("Run a worker")
    worker = None
    try:
        redirect = synth.index(">")  # the README writes the requests with a shell redirect
        with (tmp_path / synth[redirect + 1]).open("w") as out:
            command = [str(BIN / synth[0]), *synth[1:redirect]]
            subprocess.run(command, stdout=out, check=True, timeout=120)
        published = subprocess.run(
            [str(BIN / publish[0]), *localised(publish[1:], local_broker, engine, metrics)],
            cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert published.returncode == 0, published.stderr
        command = localised(worker_command, local_broker, engine, metrics)
        worker = subprocess.Popen([str(BIN / command[0]), *command[1:]], cwd=tmp_path)
        collected = subprocess.run(
            [str(BIN / collect[0]), *localised(collect[1:], local_broker, engine, metrics)],
            cwd=tmp_path, capture_output=True, text=True, timeout=240, check=False,
        )  # fmt: skip
        assert collected.returncode == 0, collected.stderr
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(60)
        engine_process.stop()
    with sqlite3.connect(tmp_path / "results.sqlite") as db:
        (count,) = db.execute("select count(*) from results").fetchone()
    assert count == 1000
