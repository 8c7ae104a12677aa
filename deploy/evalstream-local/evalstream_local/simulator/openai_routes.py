"""The simulator's vLLM front-end: the OpenAI-compatible routes and vLLM's own.

``POST /v1/chat/completions`` and ``POST /v1/completions`` (a list of prompts is one batch, each
prompt its own sequence), streamed as server-sent events or not; ``GET /v1/models``, ``/health``,
``/version`` and ``/metrics``. Validation follows vLLM: unknown model 404, context overflow 400,
malformed body 400, and with an API key configured, ``/v1`` requires ``Authorization: Bearer``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from evalstream_local.simulator.faults import FaultMode
from evalstream_local.simulator.generator import GenerationRequest, Generator
from evalstream_local.simulator.metrics import CONTENT_TYPE, SimulatorMetrics
from evalstream_local.simulator.openai_protocol import (
    ChatRequest,
    CompletionRequest,
    OpenAIError,
    ResponseIds,
    SamplingRequest,
    chat_body,
    chat_chunk,
    completion_body,
    completion_choice,
    model_card,
    usage,
)
from evalstream_local.simulator.scheduler import EngineBusyError
from evalstream_local.simulator.sequence import Sequence
from evalstream_local.simulator.tokens import count_tokens, render_chat

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
RequestT = TypeVar("RequestT", bound=BaseModel)
VLLM_VERSION = "0.26.0"
"""What ``/version`` reports: the vLLM release ``GPU.md`` was measured with."""
_SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}


class OpenAIRoutes:
    """Handlers of the OpenAI-compatible API over one :class:`Generator`."""

    def __init__(self, generator: Generator, api_key: str | None = None) -> None:
        self.generator = generator
        self.profile = generator.profile
        self._api_key = api_key
        self._metrics = SimulatorMetrics(self.profile.models[0])
        self._started = int(time.time())

    def register(self, app: web.Application) -> None:
        """Adds the routes to ``app``."""
        app.router.add_post("/v1/chat/completions", self._endpoint(self.chat))
        app.router.add_post("/v1/completions", self._endpoint(self.completions))
        app.router.add_get("/v1/models", self._endpoint(self.models))
        app.router.add_get("/health", self.health)
        app.router.add_get("/version", self.version)
        app.router.add_get("/metrics", self.metrics)

    def _endpoint(self, handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            if self._api_key is not None and not self._authorized(request):
                return web.json_response({"error": "Unauthorized"}, status=401)
            try:
                return await handler(request)
            except OpenAIError as exc:
                return web.json_response(exc.body, status=exc.status)

        return guarded

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and token == self._api_key

    async def chat(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/chat/completions``."""
        body = await _parse(request, ChatRequest)
        model = self._model(body)
        if not all(isinstance(m, dict) and "role" in m for m in body.messages):
            raise OpenAIError(400, "Each message needs a 'role'.", param="messages")
        prompt = render_chat(body.messages)
        sequences = await self._start(body, [prompt], body.limit())
        ids = ResponseIds("chatcmpl", model)
        if body.stream:
            return await self._stream_chat(request, body, ids, sequences[0])
        await self.generator.complete(sequences)
        return web.json_response(chat_body(ids, sequences[0]))

    async def completions(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/completions``; each prompt of a list is scheduled as its own sequence."""
        body = await _parse(request, CompletionRequest)
        model = self._model(body)
        prompts = body.prompts()
        if not prompts:
            raise OpenAIError(400, "Prompt cannot be empty.", param="prompt")
        sequences = await self._start(body, prompts, body.max_tokens)
        ids = ResponseIds("cmpl", model)
        if body.stream:
            return await self._stream_completions(request, body, ids, sequences)
        await self.generator.complete(sequences)
        return web.json_response(completion_body(ids, sequences))

    async def models(self, _request: web.Request) -> web.Response:
        """``GET /v1/models``."""
        cards = [
            model_card(m, self.profile.max_model_len, self._started) for m in self.profile.models
        ]
        return web.json_response({"object": "list", "data": cards})

    async def health(self, _request: web.Request) -> web.Response:
        """``GET /health``: 200 with an empty body while the engine runs."""
        return web.Response(status=200)

    async def version(self, _request: web.Request) -> web.Response:
        """``GET /version``."""
        return web.json_response({"version": VLLM_VERSION})

    async def metrics(self, _request: web.Request) -> web.Response:
        """``GET /metrics`` in the Prometheus text format, vLLM's names."""
        text = self._metrics.render(self.generator.scheduler.gauges())
        return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_TYPE})

    def _model(self, body: SamplingRequest) -> str:
        if body.model is not None and body.model not in self.profile.models:
            raise OpenAIError(
                404, f"The model `{body.model}` does not exist.", "NotFoundError", "model"
            )
        if body.n != 1:
            raise OpenAIError(400, "The simulator supports n=1 only.", param="n")
        return body.model or self.profile.models[0]

    async def _start(
        self, body: SamplingRequest, prompts: list[str], limit: int | None
    ) -> list[Sequence]:
        """Validates lengths, applies the fault and submits one sequence per prompt."""
        if body.priority and not self.profile.priority_scheduling:
            raise OpenAIError(
                400,
                f"Got priority {body.priority} but Priority scheduling is not enabled.",
                param="priority",
            )
        schema, json_mode = body.structured()
        requests = [self._request(body, p, limit, schema, json_mode) for p in prompts]
        fault = await self.generator.admit()
        if fault is FaultMode.ERROR500:
            raise OpenAIError(500, "Internal server error", "InternalServerError")
        try:
            sequences = [self.generator.sequence(r, fault) for r in requests]
            for seq in sequences:
                seq.priority = body.priority
        except (ValueError, KeyError, TypeError) as exc:
            raise OpenAIError(400, f"Invalid JSON schema: {exc}") from None
        try:
            self.generator.submit(sequences)
        except EngineBusyError as exc:
            raise OpenAIError(503, str(exc), "ServiceUnavailableError") from None
        return sequences

    def _request(
        self,
        body: SamplingRequest,
        prompt: str,
        limit: int | None,
        schema: dict[str, Any] | None,
        json_mode: bool,
    ) -> GenerationRequest:
        tokens = count_tokens(prompt)
        _check_length(tokens, limit, self.profile.max_model_len)
        return GenerationRequest(
            prompt=prompt,
            prompt_tokens=tokens,
            schema=schema,
            json_mode=json_mode,
            max_tokens=limit,
            context_room=self.profile.max_model_len - tokens,
            min_tokens=body.min_tokens,
            ignore_eos=body.ignore_eos,
            seed=body.seed,
            temperature=body.temperature,
        )

    async def _stream_chat(
        self, request: web.Request, body: ChatRequest, ids: ResponseIds, seq: Sequence
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers=_SSE_HEADERS)
        with self.generator.guard([seq]):
            await response.prepare(request)
            await _send(response, chat_chunk(ids, {"role": "assistant", "content": ""}))
            async for text in self.generator.stream(seq):
                last = seq.generated >= seq.output_tokens
                reason = seq.finish_reason if last else None
                await _send(response, chat_chunk(ids, {"content": text}, reason))
            if body.include_usage():
                tail = {**ids.head("chat.completion.chunk"), "choices": []}
                await _send(response, {**tail, "usage": usage(seq.prompt_tokens, seq.generated)})
            await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _stream_completions(
        self,
        request: web.Request,
        body: CompletionRequest,
        ids: ResponseIds,
        sequences: list[Sequence],
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers=_SSE_HEADERS)
        queue: asyncio.Queue[tuple[int, str] | None] = asyncio.Queue()
        pumps = [asyncio.create_task(self._pump(i, s, queue)) for i, s in enumerate(sequences)]
        try:
            with self.generator.guard(sequences):
                await response.prepare(request)
                ended = 0
                while ended < len(sequences):
                    item = await queue.get()
                    if item is None:
                        ended += 1
                        continue
                    index, text = item
                    seq = sequences[index]
                    reason = seq.finish_reason if seq.generated >= seq.output_tokens else None
                    choice = completion_choice(index, text, reason)
                    await _send(response, {**ids.head("text_completion"), "choices": [choice]})
                if body.include_usage():
                    prompt = sum(s.prompt_tokens for s in sequences)
                    output = sum(s.generated for s in sequences)
                    tail = {**ids.head("text_completion"), "choices": []}
                    await _send(response, {**tail, "usage": usage(prompt, output)})
                await response.write(b"data: [DONE]\n\n")
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
        await response.write_eof()
        return response

    async def _pump(
        self, index: int, seq: Sequence, queue: asyncio.Queue[tuple[int, str] | None]
    ) -> None:
        try:
            async for text in self.generator.stream(seq):
                queue.put_nowait((index, text))
        finally:
            queue.put_nowait(None)


async def _parse(request: web.Request, model: type[RequestT]) -> RequestT:
    """Reads and validates a JSON body; a malformed one is a 400 as in vLLM."""
    try:
        data = json.loads(await request.read())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise OpenAIError(400, f"JSON decode error: {exc}", "Bad Request") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"type": e["type"], "loc": ("body", *e["loc"]), "msg": e["msg"]} for e in exc.errors()
        ]
        raise OpenAIError(400, str(errors), "Bad Request") from None


def _check_length(prompt_tokens: int, max_tokens: int | None, max_model_len: int) -> None:
    """vLLM's request-length validation, with its messages."""
    if max_tokens is not None and max_tokens < 1:
        raise OpenAIError(
            400, f"max_tokens must be at least 1, got {max_tokens}.", param="max_tokens"
        )
    if prompt_tokens >= max_model_len:
        raise OpenAIError(
            400,
            f"This model's maximum context length is {max_model_len} tokens. However, your "
            f"request has {prompt_tokens} input tokens. Please reduce the length of the input "
            f"messages. (parameter=input_tokens, value={prompt_tokens})",
            param="input_tokens",
        )
    if max_tokens is not None and prompt_tokens + max_tokens > max_model_len:
        raise OpenAIError(
            400,
            f"'max_tokens' or 'max_completion_tokens' is too large: {max_tokens}. This model's "
            f"maximum context length is {max_model_len} tokens and your request has "
            f"{prompt_tokens} input tokens ({max_tokens} > {max_model_len} - {prompt_tokens}). "
            f"(parameter=max_tokens, value={max_tokens})",
            param="max_tokens",
        )


async def _send(response: web.StreamResponse, chunk: dict[str, Any]) -> None:
    await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
