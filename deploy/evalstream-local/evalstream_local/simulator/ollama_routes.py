"""The simulator's Ollama front-end: Ollama's native API.

``POST /api/chat`` and ``POST /api/generate`` (NDJSON stream by default, one object with
``"stream": false``), ``GET /api/tags``, ``GET /api/ps``, ``GET /api/version``, ``POST /api/show``.
A prompt longer than ``num_ctx`` is truncated as Ollama truncates it: the oldest chat messages
go first (system messages and the last message stay), then the prompt's middle. A full queue is
``503 server busy``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from evalstream_local.simulator.faults import FaultMode
from evalstream_local.simulator.generator import GenerationRequest, Generator
from evalstream_local.simulator.ollama_protocol import (
    OLLAMA_VERSION,
    ChatBody,
    GenerateBody,
    GenerationBody,
    OllamaError,
    created_at,
    digest,
    final_stats,
    model_details,
    show_body,
)
from evalstream_local.simulator.scheduler import EngineBusyError
from evalstream_local.simulator.sequence import Sequence
from evalstream_local.simulator.tokens import count_tokens, head_tokens, render_chat, tail_tokens

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
BodyT = TypeVar("BodyT", bound=BaseModel)
# Tokens kept from the start of a prompt that must be cut in the middle (llama.cpp's n_keep).
_NUM_KEEP = 4
_MODEL_SIZE = 815_319_791


class OllamaRoutes:
    """Handlers of Ollama's API over one :class:`Generator`."""

    def __init__(self, generator: Generator) -> None:
        self.generator = generator
        self.profile = generator.profile
        self._names = {_normalize(m): m for m in self.profile.models}
        self._expires: dict[str, datetime | None] = {}
        self._modified = created_at()

    def register(self, app: web.Application) -> None:
        """Adds the routes to ``app``."""
        app.router.add_post("/api/chat", self._endpoint(self.chat))
        app.router.add_post("/api/generate", self._endpoint(self.generate))
        app.router.add_post("/api/show", self._endpoint(self.show))
        app.router.add_get("/api/tags", self.tags)
        app.router.add_get("/api/ps", self.ps)
        app.router.add_get("/api/version", self.version)
        app.router.add_get("/", self.root)

    @staticmethod
    def _endpoint(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except OllamaError as exc:
                return web.json_response(exc.body, status=exc.status)

        return guarded

    async def chat(self, request: web.Request) -> web.StreamResponse:
        """``POST /api/chat``."""
        body = await _parse(request, ChatBody)
        self._model(body.model)
        if not body.messages:
            return self._load_reply(body, {"message": {"role": "assistant", "content": ""}})
        num_ctx = body.options.num_ctx or self.profile.max_model_len
        truncate = body.truncate is None or body.truncate
        prompt = render_chat(_fit_messages(body.messages, num_ctx) if truncate else body.messages)
        return await self._run(request, body, prompt, num_ctx, truncate, _chat_payload)

    async def generate(self, request: web.Request) -> web.StreamResponse:
        """``POST /api/generate``."""
        body = await _parse(request, GenerateBody)
        self._model(body.model)
        if not body.prompt:
            return self._load_reply(body, {"response": ""})
        num_ctx = body.options.num_ctx or self.profile.max_model_len
        truncate = body.truncate is None or body.truncate
        if body.raw:
            prompt = body.prompt
        else:
            turns = [{"role": "system", "content": body.system}] if body.system else []
            prompt = render_chat([*turns, {"role": "user", "content": body.prompt}])
        return await self._run(request, body, prompt, num_ctx, truncate, _generate_payload)

    async def show(self, request: web.Request) -> web.Response:
        """``POST /api/show``."""
        data = await _parse(request, GenerationBody)
        name = data.model or str((data.model_extra or {}).get("name", ""))
        self._model(name)
        return web.json_response(show_body(name, self.profile.max_model_len, self._modified))

    async def tags(self, _request: web.Request) -> web.Response:
        """``GET /api/tags``: the served models."""
        models = [
            {
                "name": name,
                "model": name,
                "modified_at": self._modified,
                "size": _MODEL_SIZE,
                "digest": digest(name),
                "details": model_details(),
            }
            for name in self._names
        ]
        return web.json_response({"models": models})

    async def ps(self, _request: web.Request) -> web.Response:
        """``GET /api/ps``: the models loaded now, with when they unload."""
        now = datetime.now(UTC)
        running = []
        for name, expires in self._expires.items():
            if expires is not None and expires <= now:
                continue
            until = expires or now + timedelta(days=365 * 100)
            running.append(
                {
                    "name": name,
                    "model": name,
                    "size": _MODEL_SIZE,
                    "digest": digest(name),
                    "details": model_details(),
                    "expires_at": created_at(until),
                    "size_vram": _MODEL_SIZE,
                    "context_length": self.profile.max_model_len,
                }
            )
        return web.json_response({"models": running})

    async def version(self, _request: web.Request) -> web.Response:
        """``GET /api/version``."""
        return web.json_response({"version": OLLAMA_VERSION})

    async def root(self, _request: web.Request) -> web.Response:
        """``GET /``: Ollama's liveness answer."""
        return web.Response(text="Ollama is running")

    def _model(self, name: str) -> str:
        if not name:
            raise OllamaError(400, "model is required")
        normalized = _normalize(name)
        if normalized not in self._names:
            raise OllamaError(404, f"model '{name}' not found")
        return normalized

    def _load_reply(self, body: GenerationBody, payload: dict[str, Any]) -> web.Response:
        """An empty request loads (or, with ``keep_alive`` 0, unloads) the model."""
        keep = body.keep_alive_for()
        unload = keep is not None and keep.total_seconds() == 0
        self._touch(body.model, keep)
        reason = "unload" if unload else "load"
        head = {"model": body.model, "created_at": created_at()}
        return web.json_response({**head, **payload, "done": True, "done_reason": reason})

    def _touch(self, name: str, keep: timedelta | None) -> None:
        key = _normalize(name)
        self._expires[key] = None if keep is None else datetime.now(UTC) + keep

    async def _run(
        self,
        request: web.Request,
        body: GenerationBody,
        prompt: str,
        num_ctx: int,
        truncate: bool,
        payload: Callable[[str], dict[str, Any]],
    ) -> web.StreamResponse:
        received = asyncio.get_running_loop().time()
        prompt, tokens = _fit_prompt(prompt, num_ctx, truncate)
        schema, json_mode = body.structured()
        fault = await self.generator.admit()
        if fault is FaultMode.ERROR500:
            raise OllamaError(500, "llama runner process has terminated: exit status 2")
        generation = GenerationRequest(
            prompt=prompt,
            prompt_tokens=tokens,
            schema=schema,
            json_mode=json_mode,
            max_tokens=body.limit(tokens, num_ctx),
            seed=body.options.seed,
            temperature=body.options.temperature,
        )
        try:
            seq = self.generator.sequence(generation, fault)
        except (ValueError, KeyError, TypeError) as exc:
            raise OllamaError(400, f"invalid JSON schema in format: {exc}") from None
        try:
            self.generator.submit([seq])
        except EngineBusyError as exc:
            raise OllamaError(503, str(exc)) from None
        self._touch(body.model, body.keep_alive_for())
        head = {"model": body.model}
        if body.streams():
            return await self._stream(request, seq, head, payload, received)
        await self.generator.complete([seq])
        now = asyncio.get_running_loop().time()
        done = {**head, "created_at": created_at(), **payload(seq.final_text), "done": True}
        return web.json_response({**done, **final_stats(seq, received, now)})

    async def _stream(
        self,
        request: web.Request,
        seq: Sequence,
        head: dict[str, Any],
        payload: Callable[[str], dict[str, Any]],
        received: float,
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        with self.generator.guard([seq]):
            await response.prepare(request)
            async for text in self.generator.stream(seq):
                chunk = {**head, "created_at": created_at(), **payload(text), "done": False}
                await response.write(json.dumps(chunk).encode() + b"\n")
            now = asyncio.get_running_loop().time()
            done = {**head, "created_at": created_at(), **payload(""), "done": True}
            await response.write(
                json.dumps({**done, **final_stats(seq, received, now)}).encode() + b"\n"
            )
        await response.write_eof()
        return response


def _chat_payload(text: str) -> dict[str, Any]:
    return {"message": {"role": "assistant", "content": text}}


def _generate_payload(text: str) -> dict[str, Any]:
    return {"response": text}


def _normalize(name: str) -> str:
    """Ollama's model names: a name without a tag means ``:latest``."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def _fit_messages(messages: list[dict[str, Any]], num_ctx: int) -> list[dict[str, Any]]:
    """Drops the oldest messages until the chat fits ``num_ctx``, keeping system messages and
    always the last message (Ollama's ``chatPrompt``)."""
    for start in range(len(messages)):
        kept = [m for m in messages[:start] if m.get("role") == "system"] + messages[start:]
        if start == len(messages) - 1 or count_tokens(render_chat(kept)) <= num_ctx:
            return kept
    return messages


def _fit_prompt(prompt: str, num_ctx: int, truncate: bool) -> tuple[str, int]:
    """Cuts a prompt still longer than ``num_ctx`` in the middle, keeping its first tokens."""
    tokens = count_tokens(prompt)
    if tokens <= num_ctx:
        return prompt, tokens
    if not truncate:
        raise OllamaError(400, "the input length exceeds the context length")
    keep = min(_NUM_KEEP, num_ctx - 1)
    return head_tokens(prompt, keep) + tail_tokens(prompt, num_ctx - keep), num_ctx


async def _parse(request: web.Request, model: type[BodyT]) -> BodyT:
    raw = await request.read()
    if not raw:
        raise OllamaError(400, "missing request body")
    try:
        return model.model_validate(json.loads(raw))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise OllamaError(400, str(exc)) from None
    except ValidationError as exc:
        raise OllamaError(400, exc.errors()[0]["msg"]) from None
