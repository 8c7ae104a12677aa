"""Request models, response bodies and errors of vLLM's OpenAI-compatible API, as the simulator
speaks it.

Requests are parsed tolerantly (unknown fields are allowed, as vLLM allows them); responses carry
the fields vLLM 0.2x returns, nulls included, so a client written against vLLM reads them
unchanged. Errors have vLLM's body ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from evalstream_local.simulator.sequence import Sequence


class OpenAIError(Exception):
    """An error answered in vLLM's body shape."""

    def __init__(
        self, status: int, message: str, err_type: str = "BadRequestError", param: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {
            "error": {"message": message, "type": err_type, "param": param, "code": status}
        }


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class JsonSchemaFormat(_Lenient):
    """``response_format.json_schema``: OpenAI's structured-output request."""

    name: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Lenient):
    """``response_format``."""

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class StructuredOutputs(_Lenient):
    """vLLM's ``structured_outputs`` extra field (its ``json`` key holds a schema)."""

    json_: dict[str, Any] | str | None = Field(default=None, alias="json")
    json_object: bool | None = None


class StreamOptions(_Lenient):
    """``stream_options``."""

    include_usage: bool | None = True
    continuous_usage_stats: bool | None = False


class SamplingRequest(_Lenient):
    """The fields chat and completion requests share."""

    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    seed: int | None = None
    n: int = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    response_format: ResponseFormat | None = None
    structured_outputs: StructuredOutputs | None = None
    guided_json: dict[str, Any] | str | None = None
    min_tokens: int = 0
    priority: int = 0
    ignore_eos: bool = False

    def structured(self) -> tuple[dict[str, Any] | None, bool]:
        """Returns ``(schema, json_mode)`` from whichever structured-output field is set."""
        outputs = self.structured_outputs
        if outputs is not None and outputs.json_ is not None:
            return _schema(outputs.json_), False
        if outputs is not None and outputs.json_object:
            return None, True
        if self.guided_json is not None:
            return _schema(self.guided_json), False
        fmt = self.response_format
        if fmt is not None and fmt.type == "json_schema":
            if fmt.json_schema is None or fmt.json_schema.schema_ is None:
                raise OpenAIError(400, "response_format 'json_schema' requires a 'schema'.")
            return fmt.json_schema.schema_, False
        return None, fmt is not None and fmt.type == "json_object"

    def include_usage(self) -> bool:
        """Whether a stream ends with a usage chunk."""
        return self.stream_options is not None and bool(self.stream_options.include_usage)


class ChatRequest(SamplingRequest):
    """``POST /v1/chat/completions``."""

    messages: list[dict[str, Any]]
    max_completion_tokens: int | None = None

    def limit(self) -> int | None:
        """The generation limit (``max_completion_tokens`` wins over the deprecated one)."""
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(SamplingRequest):
    """``POST /v1/completions``; a list of prompts is a batch, one choice per prompt."""

    prompt: str | list[str]

    def prompts(self) -> list[str]:
        """The prompts, one per choice."""
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)


def _schema(value: dict[str, Any] | str) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise OpenAIError(400, f"Invalid JSON schema: {exc}") from None
    if not isinstance(parsed, dict):
        raise OpenAIError(400, "Invalid JSON schema: expected an object")
    return parsed


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    """vLLM's ``usage`` object."""
    return {
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "completion_tokens": completion_tokens,
        "prompt_tokens_details": None,
    }


class ResponseIds:
    """The id, creation time and model every body and chunk of one response repeats."""

    def __init__(self, prefix: str, model: str) -> None:
        self.id = f"{prefix}-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model

    def head(self, obj: str) -> dict[str, Any]:
        """The leading fields of a body or chunk of type ``obj``."""
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model}


def chat_body(ids: ResponseIds, seq: Sequence) -> dict[str, Any]:
    """A non-streamed ``chat.completion``."""
    message = {
        "role": "assistant",
        "content": seq.final_text,
        "refusal": None,
        "annotations": None,
        "audio": None,
        "function_call": None,
        "reasoning": None,
    }
    choice = {
        "index": 0,
        "message": message,
        "logprobs": None,
        "finish_reason": seq.finish_reason,
        "stop_reason": None,
        "token_ids": None,
    }
    return {
        **ids.head("chat.completion"),
        "choices": [choice],
        "service_tier": None,
        "system_fingerprint": None,
        "usage": usage(seq.prompt_tokens, seq.output_tokens),
        "prompt_logprobs": None,
        "prompt_token_ids": None,
        "kv_transfer_params": None,
    }


def chat_chunk(
    ids: ResponseIds, delta: dict[str, Any], finish_reason: str | None = None
) -> dict[str, Any]:
    """One ``chat.completion.chunk`` of a stream."""
    choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None}
    choice["finish_reason"] = finish_reason
    if finish_reason is not None:
        choice["stop_reason"] = None
    return {**ids.head("chat.completion.chunk"), "choices": [choice]}


def completion_choice(index: int, text: str, finish_reason: str | None) -> dict[str, Any]:
    """One choice of a ``text_completion`` body or chunk."""
    return {
        "index": index,
        "text": text,
        "logprobs": None,
        "finish_reason": finish_reason,
        "stop_reason": None,
        "prompt_logprobs": None,
    }


def completion_body(ids: ResponseIds, sequences: list[Sequence]) -> dict[str, Any]:
    """A non-streamed ``text_completion`` with one choice per prompt."""
    choices = [completion_choice(i, s.final_text, s.finish_reason) for i, s in enumerate(sequences)]
    prompt = sum(s.prompt_tokens for s in sequences)
    output = sum(s.output_tokens for s in sequences)
    return {
        **ids.head("text_completion"),
        "choices": choices,
        "service_tier": None,
        "system_fingerprint": None,
        "usage": usage(prompt, output),
        "kv_transfer_params": None,
    }


def model_card(name: str, max_model_len: int, created: int) -> dict[str, Any]:
    """One entry of ``GET /v1/models``."""
    permission = {
        "id": f"modelperm-{uuid.uuid5(uuid.NAMESPACE_URL, name).hex}",
        "object": "model_permission",
        "created": created,
        "allow_create_engine": False,
        "allow_sampling": True,
        "allow_logprobs": True,
        "allow_search_indices": False,
        "allow_view": True,
        "allow_fine_tuning": False,
        "organization": "*",
        "group": None,
        "is_blocking": False,
    }
    return {
        "id": name,
        "object": "model",
        "created": created,
        "owned_by": "vllm",
        "root": name,
        "parent": None,
        "max_model_len": max_model_len,
        "permission": [permission],
    }
