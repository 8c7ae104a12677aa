"""Ollama's native API: ``/api/chat`` with ``format`` set to the JSON Schema.

Ollama serves a fixed number of parallel slots (``OLLAMA_NUM_PARALLEL``) and queues
the rest up to ``OLLAMA_MAX_QUEUE``; beyond that it answers 503 "server busy", which
is overload (slow down), not failure.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from pydantic import Field

from consumer.backends.base import (
    BackendSettings,
    Completion,
    EngineLoad,
    EngineOptions,
    Prompt,
    classify_http_error,
    classify_status,
    error_message,
)
from consumer.errors import (
    ConfigError,
    EngineError,
    EngineOverloaded,
    EngineRejected,
    InvalidOutput,
)


class OllamaSettings(BackendSettings):
    """``engine.ollama``: options of the Ollama backend."""

    keep_alive: str = Field(default="30m", description="How long Ollama keeps the model loaded.")
    num_ctx: int | None = Field(
        default=None, description="Ollama's context window (num_ctx); unset: the server's own."
    )


class OllamaBackend:
    """An Ollama server."""

    name = "ollama"

    @classmethod
    def configured(
        cls, client: httpx.AsyncClient, options: EngineOptions, section: OllamaSettings
    ) -> OllamaBackend:
        """The backend the settings describe (the registry's constructor)."""
        return cls(
            client,
            structured_output=options.structured_output,
            keep_alive=section.keep_alive,
            num_ctx=section.num_ctx,
        )

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        structured_output: bool = True,
        keep_alive: str = "30m",
        num_ctx: int | None = None,
    ) -> None:
        self._client = client
        self._structured_output = structured_output
        self._keep_alive = keep_alive
        self._num_ctx = num_ctx

    async def complete(self, model: str, prompts: list[Prompt]) -> list[Completion | EngineError]:
        return list(await asyncio.gather(*(self._chat(model, p) for p in prompts)))

    def _body(self, model: str, prompt: Prompt) -> dict[str, Any]:
        options: dict[str, Any] = {
            "num_predict": prompt.max_tokens,
            "temperature": prompt.temperature,
        }
        if prompt.seed is not None:
            options["seed"] = prompt.seed
        if self._num_ctx is not None:
            options["num_ctx"] = self._num_ctx
        body: dict[str, Any] = {
            "model": model,
            "messages": list(prompt.messages),
            "stream": False,
            "keep_alive": self._keep_alive,
            "options": options,
        }
        if self._structured_output and prompt.schema is not None:
            body["format"] = prompt.schema
        return body

    async def _chat(self, model: str, prompt: Prompt) -> Completion | EngineError:
        if prompt.raw_body is not None:
            # OpenAI batch lines go through Ollama's OpenAI-compatible endpoint unchanged.
            return await self._openai_chat(model, prompt.raw_body)
        try:
            response = await self._client.post("/api/chat", json=self._body(model, prompt))
        except httpx.HTTPError as exc:
            return classify_http_error(exc)
        if response.status_code != 200:
            return _status_error(response)
        try:
            data = response.json()
            text = data["message"]["content"]
        except (ValueError, KeyError, TypeError) as exc:
            return InvalidOutput(f"ollama reply without message.content: {exc!r}")
        reason = data.get("done_reason") or "stop"
        return Completion(
            text=text,
            finish_reason="length" if reason == "length" else reason,
            prompt_tokens=int(data.get("prompt_eval_count") or 0),
            completion_tokens=int(data.get("eval_count") or 0),
            body=data,
        )

    async def _openai_chat(self, model: str, raw: dict[str, Any]) -> Completion | EngineError:
        try:
            response = await self._client.post("/v1/chat/completions", json={**raw, "model": model})
        except httpx.HTTPError as exc:
            return classify_http_error(exc)
        except (ValueError, UnicodeEncodeError) as exc:
            return EngineRejected(f"request body is not valid JSON: {exc}", reason="invalid_body")
        if response.status_code != 200:
            return _status_error(response)
        data = response.json()
        choice = data["choices"][0]
        usage = data.get("usage") or {}
        return Completion(
            text=choice["message"].get("content") or "",
            finish_reason=choice.get("finish_reason"),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            body=data,
        )

    async def health(self) -> bool:
        try:
            response = await self._client.get("/api/version", timeout=5.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def load(self) -> EngineLoad | None:
        return None  # Ollama exposes no queue depth; its 503s are the signal.

    async def check_model(self, model: str) -> None:
        try:
            response = await self._client.get("/api/tags", timeout=10.0)
            response.raise_for_status()
            names = {m["name"] for m in response.json().get("models", [])}
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"cannot list models at the Ollama server: {exc!r}") from exc
        if model not in names and f"{model}:latest" not in names:
            raise ConfigError(
                f"model {model!r} is not pulled on the Ollama server (it has {sorted(names)}); "
                f"run `ollama pull {model}` there, or set engine.model to one it has"
            )


def _status_error(response: httpx.Response) -> EngineError:
    message = error_message(response)
    if response.status_code == 503 and "busy" in message.lower():
        return EngineOverloaded(f"HTTP 503: {message}", status_code=503)
    return classify_status(response.status_code, message)
