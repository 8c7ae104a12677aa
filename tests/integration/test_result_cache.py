"""The result cache through the real broker: shared by the workers of a group, kept across a
restart on its compacted topic, and missed when the prompt version changes."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from consumer.prompts import PromptTemplate
from tests.integration.pipeline import Pipeline, produce, read_topic, request_json

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

COUNT = 40  # distinct requests (different candidates)
PARTITIONS = 4


def engine_calls(engine_url: str) -> float:
    """Requests the simulator finished, from its vLLM-style /metrics."""
    text = httpx.get(f"{engine_url}/metrics", timeout=5).text
    counts = re.findall(r"^vllm:request_success_total\{[^}]*\} (\S+)", text, re.M)
    return sum(float(count) for count in counts)


def send_again(pipeline: Pipeline, round_: int) -> None:
    """The same COUNT requests under new ids (an import run again)."""
    messages = []
    for i in range(COUNT):
        body = json.loads(request_json(i)) | {"id": f"round{round_}-{i}"}
        messages.append((f"round{round_}-{i}".encode(), json.dumps(body).encode(), None))
    produce(pipeline.bootstrap, pipeline.topics.requests, iter(messages))


def results(pipeline: Pipeline, count: int) -> dict[str, dict[str, object]]:
    """The first ``count`` results by id (waits for them)."""
    found = read_topic(pipeline.bootstrap, pipeline.topics.results, lambda m: len(m) >= count, 120)
    return {r["id"]: r for r in (json.loads(v or b"{}") for _k, v, _h in found)}


def template_file(tmp_path: Path, version: str) -> Path:
    """The built-in prompt template under another version name."""
    template = PromptTemplate()
    fields = {"system": template.system, "user": template.user, "repair": template.repair}
    body = "".join(f"{name} = '''\n{text}'''\n" for name, text in fields.items())
    path = tmp_path / f"{version}.toml"
    path.write_text(f'version = "{version}"\n{body}', encoding="utf-8")
    return path


def test_the_cache_is_shared_kept_across_a_restart_and_keyed_by_the_prompt(
    tmp_path: Path,
    engine_factory: Callable[..., str],
    pipeline_factory: Callable[..., Pipeline],
) -> None:
    engine = engine_factory()
    pipeline = pipeline_factory(engine, PARTITIONS)
    env = {
        "EVALSTREAM_CACHE__ENABLED": "true",
        "EVALSTREAM_CACHE__TOPIC": f"cache-{uuid.uuid4().hex[:12]}",
    }
    produce(
        pipeline.bootstrap,
        pipeline.topics.requests,
        iter((f"req-{i:06d}".encode(), request_json(i), None) for i in range(COUNT)),
    )
    first = pipeline.worker(env=env, name="a")
    assert len(results(pipeline, COUNT)) == COUNT
    assert engine_calls(engine) == COUNT

    # A second worker joins: both answer the repeated requests from the shared cache.
    pipeline.worker(env=env, name="b")
    send_again(pipeline, 1)
    by_id = results(pipeline, 2 * COUNT)
    again = [by_id[f"round1-{i}"] for i in range(COUNT)]
    assert all(r["status"] == "ok" and r["cached"] is True for r in again)
    assert engine_calls(engine) == COUNT  # no engine call for any of them

    # Every worker restarted: the cache comes back from its topic.
    pipeline.stop()
    first = pipeline.worker(env=env, name="c")
    send_again(pipeline, 2)
    by_id = results(pipeline, 3 * COUNT)
    assert all(by_id[f"round2-{i}"]["cached"] is True for i in range(COUNT))
    assert engine_calls(engine) == COUNT
    first.stop()

    # A new prompt version is a new prompt: every request misses.
    other = {**env, "EVALSTREAM_ENGINE__PROMPT_TEMPLATE": str(template_file(tmp_path, "eval-x"))}
    pipeline.worker(env=other, name="d")
    send_again(pipeline, 3)
    by_id = results(pipeline, 4 * COUNT)
    assert not any(by_id[f"round3-{i}"].get("cached") for i in range(COUNT))
    assert {by_id[f"round3-{i}"]["prompt_version"] for i in range(COUNT)} == {"eval-x"}
    assert engine_calls(engine) == 2 * COUNT
