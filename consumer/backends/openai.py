"""OpenAI-compatible backend: vLLM, SGLang, llama.cpp server, TGI, LM Studio.

Chat mode sends one non-streaming ``/v1/chat/completions`` call per prompt, all of a
micro-batch concurrently, so each request frees its window slot the moment it
finishes. Completions mode sends one ``/v1/completions`` call carrying the whole
micro-batch as a list of prompts (the chat template is then ours to apply).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, Literal

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
from consumer.errors import ConfigError, EngineError, EngineRejected, InvalidOutput

_METRIC = re.compile(
    r"^((?:vllm|llamacpp):[a-z_]+)(?:\{[^}]*\})?\s+([0-9.eE+-]+|NaN)$", re.MULTILINE
)


class OpenAISettings(BackendSettings):
    """``engine.openai``: options of the OpenAI-compatible backend."""

    api: Literal["chat", "completions"] = Field(
        default="chat",
        description="One /v1/chat/completions call per request, or one /v1/completions call "
        "with the list of prompts of a micro-batch.",
        json_schema_extra={"flag": "--api"},
    )

    @property
    def one_call_per_batch(self) -> bool:
        return self.api == "completions"


class OpenAIBackend:
    """A server speaking the OpenAI HTTP API, with vLLM's extensions where present."""

    name = "openai"

    @classmethod
    def configured(
        cls, client: httpx.AsyncClient, options: EngineOptions, section: OpenAISettings
    ) -> OpenAIBackend:
        """The backend the settings describe (the registry's constructor)."""
        return cls(
            client,
            api=section.api,
            structured_output=options.structured_output,
            extra_body=dict(options.extra_body),
        )

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        api: Literal["chat", "completions"] = "chat",
        structured_output: bool = True,
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        self._client = client
        self._api = api
        self._structured_output = structured_output
        self._extra_body = dict(extra_body or {})

    async def complete(self, model: str, prompts: list[Prompt]) -> list[Completion | EngineError]:
        if self._api == "completions" and all(p.raw_body is None for p in prompts):
            return await self._complete_list(model, prompts)
        return list(await asyncio.gather(*(self._chat(model, p) for p in prompts)))

    async def _chat(self, model: str, prompt: Prompt) -> Completion | EngineError:
        body = dict(prompt.raw_body) if prompt.raw_body is not None else self._chat_body(prompt)
        body["model"] = model
        if prompt.priority is not None:
            body["priority"] = prompt.priority
        reply = await self._post("/v1/chat/completions", body)
        if isinstance(reply, EngineError):
            return reply
        try:
            choice = reply["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            return InvalidOutput(f"chat reply without choices[0].message: {exc!r}")
        return _completion(text, choice.get("finish_reason"), reply.get("usage"), reply)

    def _chat_body(self, prompt: Prompt) -> dict[str, Any]:
        body: dict[str, Any] = {
            "messages": list(prompt.messages),
            "max_tokens": prompt.max_tokens,
            "temperature": prompt.temperature,
        }
        if prompt.seed is not None:
            body["seed"] = prompt.seed
        if self._structured_output and prompt.schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "evaluation", "schema": prompt.schema, "strict": True},
            }
        body.update(self._extra_body)
        return body

    async def _complete_list(
        self, model: str, prompts: list[Prompt]
    ) -> list[Completion | EngineError]:
        first = prompts[0]
        body: dict[str, Any] = {
            "model": model,
            "prompt": [_flatten(p.messages) for p in prompts],
            "max_tokens": max(p.max_tokens for p in prompts),
            "temperature": first.temperature,
        }
        if self._structured_output and first.schema is not None:
            # /v1/completions has no response_format; vLLM takes its own field.
            body["structured_outputs"] = {"json": first.schema}
        priorities = [p.priority for p in prompts if p.priority is not None]
        if priorities:
            body["priority"] = min(priorities)  # one call: the most urgent prompt's
        body.update(self._extra_body)
        reply = await self._post("/v1/completions", body)
        if isinstance(reply, EngineError):
            return [reply] * len(prompts)
        choices = sorted(reply.get("choices", []), key=lambda c: int(c.get("index", 0)))
        if len(choices) != len(prompts):
            error = InvalidOutput(f"{len(choices)} choices for {len(prompts)} prompts")
            return [error] * len(prompts)
        share = _share_usage(reply.get("usage"), len(prompts))
        return [
            _completion(c.get("text", ""), c.get("finish_reason"), share, reply) for c in choices
        ]

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any] | EngineError:
        try:
            response = await self._client.post(path, json=body)
        except httpx.HTTPError as exc:
            return classify_http_error(exc)
        except (ValueError, UnicodeEncodeError) as exc:
            # The body cannot be sent at all (NaN, a lone surrogate in a batch line).
            return EngineRejected(f"request body is not valid JSON: {exc}", reason="invalid_body")
        if response.status_code != 200:
            return classify_status(response.status_code, error_message(response))
        try:
            data = response.json()
        except ValueError:
            return InvalidOutput(f"engine reply is not JSON: {response.text[:200]!r}")
        if not isinstance(data, dict):
            return InvalidOutput("engine reply is not a JSON object")
        return data

    async def health(self) -> bool:
        try:
            response = await self._client.get("/health", timeout=5.0)
        except httpx.HTTPError:
            return False
        if response.status_code == 404:  # servers without /health (llama.cpp variants, LM Studio)
            response = await self._client.get("/v1/models", timeout=5.0)
        return response.status_code == 200

    async def load(self) -> EngineLoad | None:
        try:
            response = await self._client.get("/metrics", timeout=5.0)
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        values: dict[str, float] = {}
        for name, value in _METRIC.findall(response.text):
            values[name] = values.get(name, 0.0) + float(value)
        return engine_load(values)

    async def check_model(self, model: str) -> None:
        try:
            response = await self._client.get("/v1/models", timeout=10.0)
            response.raise_for_status()
            served = [m["id"] for m in response.json().get("data", [])]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"cannot list models at the engine: {exc!r}") from exc
        if model not in served:
            raise ConfigError(
                f"model {model!r} is not served by the engine (it serves {served}); "
                "set engine.model to one of those, or start the engine with that model"
            )


def engine_load(values: dict[str, float]) -> EngineLoad | None:
    """The engine's occupancy from its Prometheus gauges: vLLM's, or llama-server's.

    llama-server exports them only when started with ``--metrics``: requests in its slots
    (``requests_processing``) and requests deferred until a slot frees
    (``requests_deferred``); it reports no KV-cache usage. Without either, None: the
    window then finds the engine's best concurrency from throughput alone.
    """
    if "vllm:num_requests_waiting" in values:
        kv = values.get("vllm:kv_cache_usage_perc", values.get("vllm:gpu_cache_usage_perc"))
        return EngineLoad(
            running=values.get("vllm:num_requests_running", 0.0),
            waiting=values["vllm:num_requests_waiting"],
            kv_cache_usage=kv,
        )
    if "llamacpp:requests_deferred" in values:
        return EngineLoad(
            running=values.get("llamacpp:requests_processing", 0.0),
            waiting=values["llamacpp:requests_deferred"],
        )
    return None


def _completion(text: str, finish_reason: Any, usage: Any, body: dict[str, Any]) -> Completion:
    usage = usage if isinstance(usage, dict) else {}
    return Completion(
        text=text,
        finish_reason=finish_reason,
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        body=body,
    )


def _share_usage(usage: Any, count: int) -> dict[str, int]:
    """A list call reports one usage for all prompts; attribute it evenly."""
    usage = usage if isinstance(usage, dict) else {}
    return {
        "prompt_tokens": int(usage.get("prompt_tokens") or 0) // count,
        "completion_tokens": int(usage.get("completion_tokens") or 0) // count,
    }


def _flatten(messages: tuple[dict[str, str], ...]) -> str:
    """A plain-text rendering of chat messages for ``/v1/completions``."""
    parts = [f"{m['role'].upper()}:\n{m['content']}" for m in messages]
    return "\n\n".join([*parts, "ASSISTANT:\n"])
