"""The backend protocol: what the worker needs from an inference engine.

A backend turns prompts into completions over one shared ``httpx.AsyncClient`` and
classifies every failure into the `consumer.errors` hierarchy; it never retries
(the failure policy does) and never parses the evaluation (the worker does).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from pydantic import BaseModel, ConfigDict

from consumer.errors import EngineError, EngineOverloaded, EngineRejected, EngineUnavailable


@dataclass(frozen=True, slots=True)
class Prompt:
    """One request to the engine, independent of the wire protocol.

    Attributes:
        messages: chat messages (``role``/``content``), template already applied.
        max_tokens: completion token cap.
        temperature: sampling temperature.
        seed: sampling seed, or None.
        schema: JSON Schema the reply must follow (structured output), or None.
        raw_body: an OpenAI chat-completions body sent as is (batch lines), or None.
        priority: the engine's request priority (vLLM: lower runs sooner), or None.
    """

    messages: tuple[dict[str, str], ...]
    max_tokens: int
    temperature: float
    seed: int | None = None
    schema: dict[str, Any] | None = None
    raw_body: dict[str, Any] | None = None
    priority: int | None = None


@dataclass(frozen=True, slots=True)
class Completion:
    """One engine reply.

    Attributes:
        text: the generated text.
        finish_reason: ``stop``, ``length`` or what the engine said.
        prompt_tokens: prompt tokens as counted by the engine.
        completion_tokens: generated tokens.
        body: the engine's whole JSON reply (batch lines echo it back).
    """

    text: str
    finish_reason: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    body: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EngineLoad:
    """The engine's own view of its queue, where it exposes one."""

    running: float
    waiting: float
    kv_cache_usage: float | None = None


class BackendSettings(BaseModel):
    """A backend's own settings section (``engine.<backend name>``); frozen, like all settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @property
    def one_call_per_batch(self) -> bool:
        """Whether one HTTP call carries a whole micro-batch (a list-taking API)."""
        return False


@dataclass(frozen=True, slots=True)
class EngineOptions:
    """The engine section's fields every backend is built with.

    Attributes:
        structured_output: constrain replies to the evaluation schema.
        extra_body: fields merged into every request body.
    """

    structured_output: bool = True
    extra_body: Mapping[str, Any] = field(default_factory=dict)


class Backend(Protocol):
    """An inference engine reachable over HTTP."""

    name: str

    async def complete(self, model: str, prompts: list[Prompt]) -> list[Completion | EngineError]:
        """Runs a micro-batch; one outcome per prompt, in order.

        A failure of the whole call is returned for every prompt; a backend whose
        API takes a list sends one HTTP call, others send concurrent calls.
        """
        ...

    async def health(self) -> bool:
        """Whether the engine answers its health endpoint."""
        ...

    async def load(self) -> EngineLoad | None:
        """The engine's queue, or None when it exposes none."""
        ...

    async def check_model(self, model: str) -> None:
        """Raises `ConfigError` naming the model and the fix when it is not served."""
        ...


def classify_http_error(exc: Exception) -> EngineError:
    """Maps a transport error to the error hierarchy (retriable or not)."""
    if isinstance(exc, httpx.TimeoutException):
        return EngineUnavailable(f"engine timed out: {type(exc).__name__}", reason="timeout")
    if isinstance(exc, httpx.TransportError):
        return EngineUnavailable(f"engine unreachable: {exc!r}", reason="connect")
    return EngineError(f"engine call failed: {exc!r}")


def classify_status(status: int, message: str) -> EngineError:
    """Maps a non-2xx HTTP status to the error hierarchy."""
    text = f"HTTP {status}: {message[:500]}"
    if status == 429:
        return EngineOverloaded(text, status_code=status)
    if status >= 500:
        return EngineUnavailable(text, reason=f"http_{status}", status_code=status)
    if "context" in message.lower() and ("length" in message.lower() or "token" in message):
        return EngineRejected(text, reason="context_length", status_code=status)
    return EngineRejected(text, reason=f"http_{status}", status_code=status)


def error_message(response: httpx.Response) -> str:
    """The human part of an engine error body (OpenAI, vLLM or Ollama shape)."""
    try:
        body = response.json()
    except ValueError:
        return response.text
    if isinstance(body, dict):
        error = body.get("error", body.get("message", body))
        if isinstance(error, dict):
            return str(error.get("message", error))
        return str(error)
    return str(body)
