"""The backend registry: each backend built from its own settings section, by name."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from consumer.__main__ import build_backend
from consumer.backends.base import Prompt
from consumer.backends.registry import BACKENDS
from consumer.settings import EngineSettings, load_settings

pytestmark = pytest.mark.timeout(10)

PROMPT = Prompt(messages=({"role": "user", "content": "hi"},), max_tokens=7, temperature=0.0)


def recording_client(bodies: list[dict[str, Any]]) -> httpx.AsyncClient:
    """A client whose engine records each request body (and answers HTTP 500)."""

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(500, json={"error": "recorded"})

    return httpx.AsyncClient(base_url="http://engine", transport=httpx.MockTransport(handler))


def sent(engine: dict[str, Any]) -> tuple[str, bool, list[dict[str, Any]]]:
    """The backend's name, whether it batches, and the bodies of one prompt through it."""
    settings = load_settings(engine=engine)
    bodies: list[dict[str, Any]] = []

    async def call() -> tuple[str, bool]:
        async with recording_client(bodies) as client:
            backend, batches = build_backend(settings, client)
            await backend.complete("m", [PROMPT])
            return backend.name, batches

    name, batches = asyncio.run(call())
    return name, batches, bodies


@pytest.mark.parametrize("name", list(BACKENDS))
def test_every_registered_backend_is_built_by_its_name_with_its_own_section(name: str) -> None:
    assert name in EngineSettings.model_fields  # engine.<name>, read like every section
    built, batches, bodies = sent({"backend": name})
    assert built == name
    assert batches is False  # the defaults send one call per request
    assert len(bodies) == 1


def test_the_ollama_section_reaches_the_request_body(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALSTREAM_ENGINE__OLLAMA__KEEP_ALIVE", "5m")
    _, _, (body,) = sent({"backend": "ollama", "ollama": {"num_ctx": 4096}})
    assert body["keep_alive"] == "5m"
    assert body["options"]["num_ctx"] == 4096
    assert body["options"]["num_predict"] == 7


def test_the_openai_section_chooses_the_list_api_and_its_batching() -> None:
    name, batches, (body,) = sent(
        {"backend": "openai", "openai": {"api": "completions"}, "extra_body": {"min_tokens": 3}}
    )
    assert (name, batches) == ("openai", True)
    assert isinstance(body["prompt"], list)  # /v1/completions: the prompts as a list
    assert len(body["prompt"]) == 1
    assert body["min_tokens"] == 3  # the common extra_body still applies


def test_an_unknown_backend_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown backend 'tgi': one of openai, ollama"):
        load_settings(engine={"backend": "tgi"})


def test_a_section_field_of_another_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="keep_alive"):
        load_settings(engine={"openai": {"keep_alive": "5m"}})


def test_a_key_that_moved_into_its_backend_section_names_its_new_home(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EVALSTREAM_ENGINE__KEEP_ALIVE", "5m")
    with pytest.raises(ValueError, match=r"EVALSTREAM_ENGINE__OLLAMA__KEEP_ALIVE"):
        load_settings()
    monkeypatch.delenv("EVALSTREAM_ENGINE__KEEP_ALIVE")
    with pytest.raises(ValueError, match=r"engine\.api is now engine\.openai\.api"):
        load_settings(engine={"api": "completions"})
