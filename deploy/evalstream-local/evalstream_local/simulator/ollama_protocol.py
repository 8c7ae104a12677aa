"""Request models and response bodies of Ollama's native API, as the simulator speaks it.

Field names, defaults and messages follow Ollama's ``api/types.go`` and ``server/routes.go``:
``stream`` defaults to true (NDJSON), durations are nanoseconds, an unknown model is
``404 {"error": "model 'X' not found"}`` and a full queue is ``503`` with ``ErrMaxQueue``'s text.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from evalstream_local.simulator.sequence import Sequence

OLLAMA_VERSION = "0.12.6"
DEFAULT_KEEP_ALIVE = timedelta(minutes=5)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class OllamaError(Exception):
    """An error answered in Ollama's body shape ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": message}


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


class Options(_Lenient):
    """The ``options`` Ollama reads for generation (the rest are accepted and ignored)."""

    num_predict: int | None = None
    temperature: float | None = None
    seed: int | None = None
    num_ctx: int | None = None


class GenerationBody(_Lenient):
    """Fields ``/api/chat`` and ``/api/generate`` share."""

    model: str = ""
    format_: str | dict[str, Any] | None = Field(default=None, alias="format")
    options: Options = Field(default_factory=Options)
    stream: bool | None = None
    keep_alive: str | float | None = None
    truncate: bool | None = None

    def streams(self) -> bool:
        """Ollama streams unless told ``"stream": false``."""
        return self.stream is None or self.stream

    def structured(self) -> tuple[dict[str, Any] | None, bool]:
        """Returns ``(schema, json_mode)`` from ``format``."""
        fmt = self.format_
        if fmt is None or fmt == "":
            return None, False
        if fmt == "json":
            return None, True
        if isinstance(fmt, dict):
            return fmt, False
        quoted = json.dumps(json.dumps(fmt))
        raise OllamaError(
            400, f'invalid format: {quoted}; expected "json" or a valid JSON Schema object'
        )

    def limit(self, prompt_tokens: int, num_ctx: int) -> int | None:
        """``num_predict``: -1 (default) unlimited, -2 fill the context, n > 0 at most n."""
        n = self.options.num_predict
        if n == -2:
            return max(1, num_ctx - prompt_tokens)
        return n if n is not None and n > 0 else None

    def keep_alive_for(self) -> timedelta | None:
        """How long the model stays loaded; ``None`` forever (a negative keep_alive)."""
        value = self.keep_alive
        if value is None:
            return DEFAULT_KEEP_ALIVE
        if isinstance(value, int | float) or value.lstrip("-").replace(".", "", 1).isdigit():
            seconds = float(value)
        else:
            sign = -1.0 if value.startswith("-") else 1.0
            parts = _DURATION_PART.findall(value)
            if not parts:
                raise OllamaError(400, f'time: invalid duration "{value}"')
            seconds = sign * sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
        return None if seconds < 0 else timedelta(seconds=seconds)


class ChatBody(GenerationBody):
    """``POST /api/chat``."""

    messages: list[dict[str, Any]] = Field(default_factory=list)


class GenerateBody(GenerationBody):
    """``POST /api/generate``."""

    prompt: str = ""
    system: str | None = None
    raw: bool = False


def created_at(moment: datetime | None = None) -> str:
    """A timestamp as Go marshals ``time.Time`` in UTC."""
    moment = moment or datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def final_stats(seq: Sequence, received_at: float, now: float) -> dict[str, Any]:
    """The ``done`` message's counts and durations (nanoseconds) of one sequence."""
    admitted = seq.admitted_at if seq.admitted_at is not None else received_at
    first = seq.first_token_at if seq.first_token_at is not None else admitted
    finished = seq.finished_at if seq.finished_at is not None else now
    return {
        "done_reason": seq.finish_reason,
        "total_duration": _ns(now - received_at),
        "load_duration": _ns(min(seq.arrived_at, now) - received_at),
        "prompt_eval_count": seq.prompt_tokens,
        "prompt_eval_duration": _ns(first - admitted),
        "eval_count": seq.generated,
        "eval_duration": _ns(finished - first),
    }


def _ns(seconds: float) -> int:
    return max(0, round(seconds * 1e9))


def model_details() -> dict[str, Any]:
    """``details`` of a served model (a gemma3 1B quantised as ``ollama pull`` gets it)."""
    return {
        "parent_model": "",
        "format": "gguf",
        "family": "gemma3",
        "families": ["gemma3"],
        "parameter_size": "999.89M",
        "quantization_level": "Q4_K_M",
    }


def digest(name: str) -> str:
    """A stable fake sha256 digest for a model name."""
    return hashlib.sha256(name.encode()).hexdigest()


def show_body(name: str, context_length: int, modified_at: str) -> dict[str, Any]:
    """``POST /api/show`` of a served model."""
    return {
        "license": "Gemma Terms of Use",
        "modelfile": f'# Modelfile generated by "ollama show"\nFROM {name}\n',
        "parameters": 'stop                           "<end_of_turn>"',
        "template": "{{- range .Messages }}<start_of_turn>{{ .Role }}\n{{ .Content }}"
        "<end_of_turn>\n{{ end }}<start_of_turn>model\n",
        "details": model_details(),
        "model_info": {
            "general.architecture": "gemma3",
            "general.parameter_count": 999885952,
            "gemma3.context_length": context_length,
            "gemma3.embedding_length": 1152,
            "gemma3.block_count": 26,
        },
        "capabilities": ["completion"],
        "modified_at": modified_at,
    }
