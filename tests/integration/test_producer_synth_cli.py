"""The README's first requests through a real worker: ``synth --batch-format`` and the example.

Both used to be dead-lettered as ``unknown_model`` (``"model": "default"`` in every batch body,
``"model": "optional route"`` in the README's example); they must be answered as written.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.pipeline import Pipeline
from tests.integration.test_producer_publish_cli import REPO_ROOT, producer_cli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

COUNT = 20


def readme_request() -> str:
    """The example request of the README's "Publish requests" section, as one JSONL line."""
    text = (REPO_ROOT / "README.md").read_text()
    section = text[text.index("### Publish requests") :]
    block = section[section.index("```json\n") + len("```json\n") :]
    return json.dumps(json.loads(block[: block.index("```")])) + "\n"


def test_synth_batch_lines_and_the_readme_example_are_answered_not_dead_lettered(
    engine_factory: Callable[..., str], pipeline_factory: Callable[..., Pipeline], tmp_path: Path
) -> None:
    pipeline = pipeline_factory(engine_factory("instant"), 2)
    bootstrap, topics = pipeline.bootstrap, pipeline.topics
    batch_in, example = tmp_path / "batch.jsonl", tmp_path / "example.jsonl"
    synth = producer_cli(
        "synth", "--count", str(COUNT), "--seed", "2", "--batch-format", "-o", str(batch_in)
    )
    assert synth.returncode == 0, synth.stderr
    example.write_text(readme_request())
    for path in (batch_in, example):
        published = producer_cli(
            "publish", str(path), "--bootstrap-servers", bootstrap, "--topic", topics.requests,
            "--no-progress",
        )  # fmt: skip
        assert published.returncode == 0, published.stderr
    pipeline.worker()
    out, summary = tmp_path / "results.jsonl", tmp_path / "summary.json"
    collected = producer_cli(
        "collect", "--bootstrap-servers", bootstrap, "--topic", topics.results,
        "--dlq-topic", topics.dlq, "--out", str(out), "--expect", str(COUNT + 1),
        "--json-summary", str(summary), "--no-progress",
    )  # fmt: skip
    assert collected.returncode == 0, collected.stderr
    stats = json.loads(summary.read_text())
    assert (stats["distinct"], stats["dead_letters"]) == (COUNT + 1, 0)
    lines = {
        line.get("custom_id", line.get("id")): line
        for line in map(json.loads, out.read_text().splitlines())
    }
    assert lines.pop("req-1")["status"] == "ok"  # the README's example
    assert len(lines) == COUNT
    assert {line["response"]["status_code"] for line in lines.values()} == {200}
