"""The interactive views in a real pseudo-terminal: progress bars and ``status --watch``."""

from __future__ import annotations

import json
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pexpect
import pytest

from tests.integration.pipeline import Pipeline, produce, request_json

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def spawn(*args: str) -> pexpect.spawn[str]:
    return pexpect.spawn(
        sys.executable, ["-m", "producer", *args], encoding="utf-8", timeout=60,
        dimensions=(40, 120), env={"TERM": "xterm-256color", "COLUMNS": "120"},
    )  # fmt: skip


def test_publish_draws_a_progress_bar_and_a_summary_in_a_terminal(
    kafka_bootstrap: str, topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    path = tmp_path / "requests.jsonl"
    path.write_text("".join(request_json(i).decode() + "\n" for i in range(3000)))
    child = spawn("publish", str(path), "--bootstrap-servers", kafka_bootstrap,
                  "--topic", topic_factory(2), "--rate", "1500")  # fmt: skip
    child.expect(r"\d+/3000")  # the bar with its count, redrawn while it runs
    child.expect("published 3,000")  # then the summary
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_status_watch_refreshes_in_place_until_ctrl_c(
    engine_factory: Callable[..., str], pipeline_factory: Callable[..., Pipeline]
) -> None:
    pipeline = pipeline_factory(engine_factory("vllm", "--time-scale", "2"), 2)
    produce(pipeline.bootstrap, pipeline.topics.requests,
            ((None, request_json(i), None) for i in range(400)))  # fmt: skip
    pipeline.worker("--window-policy", "fixed", "--window", "4")
    child = spawn("status", "--bootstrap-servers", pipeline.bootstrap, "--group",
                  pipeline.topics.group, "--topic", pipeline.topics.requests,
                  "--watch", "--interval", "1")  # fmt: skip
    backlogs = []
    for _ in range(3):  # three refreshes, each with a backlog figure
        child.expect(r"backlog\D*(\d[\d,]*)")
        match = child.match
        assert isinstance(match, re.Match)
        backlogs.append(int(match.group(1).replace(",", "")))
    assert backlogs[0] > 0
    assert backlogs[-1] < backlogs[0]  # live figures, not one frame repeated
    child.expect(r"ETA")
    child.kill(signal.SIGINT)  # Ctrl-C ends the watch cleanly
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus in (0, 130)
    print(json.dumps({"backlogs": backlogs}))
