"""OpenAI Batch API compatibility end to end: batch input in, batch output file out."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.pipeline import SIM_MODEL, Pipeline

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

COUNT = 500


def producer(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "producer", *args], capture_output=True, text=True, timeout=240
    )


def test_batch_input_through_the_worker_gives_one_output_line_per_custom_id(
    engine_factory: Callable[..., str], pipeline_factory: Callable[..., Pipeline], tmp_path: Path
) -> None:
    pipeline = pipeline_factory(engine_factory("instant"), 4)
    batch_in, batch_out = tmp_path / "batch_input.jsonl", tmp_path / "batch_output.jsonl"
    synth = producer(
        "synth", "--count", str(COUNT), "--seed", "3", "--batch-format",
        "--model", SIM_MODEL, "-o", str(batch_in),
    )  # fmt: skip
    assert synth.returncode == 0, synth.stderr
    bootstrap, topics = pipeline.bootstrap, pipeline.topics
    published = producer(
        "publish", str(batch_in), "--bootstrap-servers", bootstrap,
        "--topic", topics.requests, "--no-progress",
    )  # fmt: skip
    assert published.returncode == 0, published.stderr
    pipeline.worker()
    collected = producer(
        "collect", "--bootstrap-servers", bootstrap, "--topic", topics.results,
        "--out", str(batch_out), "--format", "openai-batch", "--expect", str(COUNT),
        "--dlq-topic", topics.dlq, "--no-progress",
    )  # fmt: skip
    assert collected.returncode == 0, collected.stderr

    sent = [json.loads(line)["custom_id"] for line in batch_in.read_text().splitlines()]
    lines = [json.loads(line) for line in batch_out.read_text().splitlines()]
    assert sorted(line["custom_id"] for line in lines) == sorted(sent)  # exactly one each
    for line in lines:  # the field set of OpenAI's batch output format
        assert list(line) == ["id", "custom_id", "response", "error"]
        assert line["error"] is None
        response = line["response"]
        assert set(response) == {"status_code", "request_id", "body"}
        assert response["status_code"] == 200
        body = response["body"]
        assert body["object"] == "chat.completion"
        assert body["choices"][0]["message"]["role"] == "assistant"
        assert body["usage"]["completion_tokens"] > 0
