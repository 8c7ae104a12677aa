"""The backends by name: a new backend is its module and one line in `BACKENDS`.

Each entry brings the backend's own settings section, which becomes ``engine.<name>`` in the
settings (``EVALSTREAM_ENGINE__<NAME>__<FIELD>``, a config-file table, and flags), and the
constructor that builds the backend from it. ``engine.backend`` chooses among these names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx

from consumer.backends.base import Backend, BackendSettings, EngineOptions
from consumer.backends.ollama import OllamaBackend, OllamaSettings
from consumer.backends.openai import OpenAIBackend, OpenAISettings

S = TypeVar("S", bound=BackendSettings)


@dataclass(frozen=True, slots=True)
class Registration(Generic[S]):
    """A backend known by name.

    Attributes:
        section: its settings section (``engine.<name>``).
        build: makes the backend from the shared HTTP client, the engine's common options
            and its section.
    """

    section: type[S]
    build: Callable[[httpx.AsyncClient, EngineOptions, S], Backend]

    def create(
        self, client: httpx.AsyncClient, options: EngineOptions, section: BackendSettings
    ) -> Backend:
        """Builds the backend from a section of this registration's type."""
        if not isinstance(section, self.section):
            raise TypeError(f"expected {self.section.__name__}, got {type(section).__name__}")
        return self.build(client, options, section)


BACKENDS: Mapping[str, Registration[Any]] = {
    "openai": Registration(OpenAISettings, OpenAIBackend.configured),
    "ollama": Registration(OllamaSettings, OllamaBackend.configured),
}
