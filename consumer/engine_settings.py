"""The engine section of the settings: the engine, its model, and each backend's own section.

``engine.backend`` names a backend of `consumer.backends.registry`; every registered backend
adds its own section here (``engine.openai``, ``engine.ollama``), read from the environment,
the file and the flags like every other section.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, SecretStr, create_model, field_validator, model_validator

from consumer.backends.base import BackendSettings, EngineOptions
from consumer.backends.registry import BACKENDS
from consumer.setting_checks import Section, http_url, where


class VariantSettings(Section):
    """One arm of an A/B split: requests naming no model go to ``model`` with ``weight``."""

    name: str
    model: str
    weight: float = Field(gt=0)


# Keys that were common to every backend and now live in their backend's section.
_MOVED = {"api": "openai", "keep_alive": "ollama", "num_ctx": "ollama"}


class _EngineSettings(Section):
    """The inference engine this worker drives (one engine per GPU).

    Beside these fields, each registered backend has its own section here, named after it
    (``engine.openai``, ``engine.ollama``; `consumer.backends.registry`).
    """

    backend: str = Field(
        default="openai",
        description="Which engine API to speak: " + ", ".join(BACKENDS) + ".",
        json_schema_extra={"choices": list(BACKENDS), "flag": "--backend"},
    )
    url: str = Field(
        default="http://127.0.0.1:8000",
        description="The engine's base URL; {gpu} is replaced by the gpu setting.",
    )
    model: str = Field(
        default="google/gemma-3-1b-it",
        description="Model for requests that name none.",
        json_schema_extra={"flag": "--model"},
    )
    api_key: SecretStr | None = Field(
        default=None, description="Bearer token for the engine (environment or file only)."
    )

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, data: Any) -> Any:
        """Names the new home of a key that moved into its backend's section."""
        if isinstance(data, dict):
            for key, section in _MOVED.items():
                if key in data:
                    raise ValueError(
                        f"engine.{key} is now engine.{section}.{key} "
                        f"(EVALSTREAM_ENGINE__{section.upper()}__{key.upper()})"
                    )
        return data

    @field_validator("backend")
    @classmethod
    def _backend(cls, value: str) -> str:
        if value not in BACKENDS:
            known = ", ".join(BACKENDS)
            raise ValueError(
                f"unknown backend {value!r}: one of {known} "
                f"(set by {where('engine', 'backend', '--backend')})"
            )
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return http_url(value, where("engine", "url", "--engine-url"))

    structured_output: bool = Field(
        default=True, description="Constrain replies to the evaluation JSON Schema."
    )
    string_bounds: bool = Field(
        default=True,
        description="Send the evaluation schema's string lengths (maxLength) to the engine's "
        "grammar. Off, the grammar is smaller and replies are still validated against them.",
    )
    max_tokens: int | None = Field(
        default=None,
        ge=1,
        description="Completion token cap. Unset: with structured output, the longest reply "
        "the evaluation schema allows (every reply that follows it fits); without, 512.",
        json_schema_extra={"flag": "--max-tokens"},
    )
    temperature: float = Field(default=0.0, ge=0.0, le=2.0, description="Sampling temperature.")
    timeout_s: float = Field(default=600.0, gt=0, description="Time limit of one engine call.")
    extra_body: dict[str, Any] = Field(
        default_factory=dict,
        description="Engine-specific request fields merged into every call of the openai "
        'backend (vLLM: {"ignore_eos": true, "min_tokens": 150}).',
    )
    variants: list[VariantSettings] = Field(
        default_factory=list,
        description='A/B split, e.g. [{"name": "a", "model": "m1", "weight": 0.9}, '
        '{"name": "b", "model": "m2", "weight": 0.1}]; empty: everything to `model`.',
    )
    prompt_template: Path | None = Field(
        default=None, description="A TOML prompt template replacing the built-in one."
    )

    def section(self) -> BackendSettings:
        """The chosen backend's own settings (``engine.<backend>``)."""
        section: BackendSettings = getattr(self, self.backend)
        return section

    def options(self) -> EngineOptions:
        """The fields every backend is built with."""
        return EngineOptions(self.structured_output, dict(self.extra_body))


# The engine section with one field per registered backend, so a new backend's settings are
# read from the environment, the file and the flags without another line here. Type checkers
# see the common fields; code reaches a backend's own through `section()`.
if TYPE_CHECKING:
    EngineSettings = _EngineSettings
else:
    EngineSettings = create_model(
        "EngineSettings",
        __base__=_EngineSettings,
        __doc__=_EngineSettings.__doc__,
        __module__=__name__,
        **{name: (kind.section, kind.section()) for name, kind in BACKENDS.items()},
    )
