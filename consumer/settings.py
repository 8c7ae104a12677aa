"""The worker's configuration: one frozen object, built once in ``__main__``.

Sources, strongest first: command-line flags, ``EVALSTREAM_*`` environment variables
(nested sections with ``__``, e.g. ``EVALSTREAM_ENGINE__URL``), an optional TOML, YAML or
JSON file (``--config``, else ``EVALSTREAM_CONFIG_FILE``; its keys are the sections and
fields below, e.g. ``[kafka] group_id = "g"``), then the defaults below.
Nothing else in the package reads the environment.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    JsonConfigSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)

from consumer.backends.base import BackendSettings, EngineOptions
from consumer.backends.registry import BACKENDS
from consumer.setting_checks import http_url, topic_name, where


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSettings(_Section):
    """Broker, topics, group and delivery guarantee."""

    bootstrap_servers: str = "127.0.0.1:9092"
    group_id: str = "evalstream"
    requests_topic: str = "evalstream.requests"
    results_topic: str = "evalstream.results"
    dlq_topic: str = "evalstream.dlq"
    processing_guarantee: Literal["at_least_once", "exactly_once"] = "at_least_once"

    @field_validator("requests_topic", "results_topic", "dlq_topic")
    @classmethod
    def _topic(cls, value: str, info: ValidationInfo) -> str:
        name = str(info.field_name)
        return topic_name(value, where("kafka", name, "--" + name.replace("_", "-")))

    commit_interval_s: float = Field(default=1.0, gt=0)
    max_request_bytes: int = Field(
        default=1_048_576, ge=1024, description="Larger request values are dead-lettered."
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: Path | None = None
    client: dict[str, str] = Field(
        default_factory=dict,
        description="Extra librdkafka options (dotted keys), applied to every client.",
    )

    def client_config(self) -> dict[str, str]:
        """librdkafka options shared by the consumer and producers (secrets included)."""
        config = {"bootstrap.servers": self.bootstrap_servers}
        config["security.protocol"] = self.security_protocol
        if self.sasl_mechanism:
            config["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            config["sasl.username"] = self.sasl_username
        if self.sasl_password:
            config["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_ca_location:
            config["ssl.ca.location"] = str(self.ssl_ca_location)
        config.update(self.client)
        return config


class VariantSettings(_Section):
    """One arm of an A/B split: requests naming no model go to ``model`` with ``weight``."""

    name: str
    model: str
    weight: float = Field(gt=0)


class _EngineSettings(_Section):
    """The inference engine this worker drives (one engine per GPU).

    Beside these fields, each registered backend has its own section here, named after it
    (``engine.openai``, ``engine.ollama``; `consumer.backends.registry`).
    """

    backend: str = Field(
        default="openai",
        description="Which engine API to speak: " + ", ".join(BACKENDS) + ".",
        json_schema_extra={"choices": list(BACKENDS)},
    )
    url: str = Field(
        default="http://127.0.0.1:8000",
        description="The engine's base URL; {gpu} is replaced by the gpu setting.",
    )
    model: str = Field(
        default="google/gemma-3-1b-it", description="Model for requests that name none."
    )
    api_key: SecretStr | None = Field(default=None, description="Bearer token for the engine.")

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
        description="Completion token cap. Default: with structured output, the longest reply "
        "the evaluation schema allows (every reply that follows it fits); without, 512.",
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


class WindowSettings(_Section):
    """How many requests may be in the engine at once."""

    policy: Literal["adaptive", "fixed"] = "adaptive"
    size: int = Field(default=32, ge=1, description="Fixed size, or the adaptive start.")
    min: int = Field(default=4, ge=1)
    max: int = Field(
        default=1024,
        ge=1,
        description="vLLM runs up to 1,024 requests at once on an H200 (its default max_num_seqs).",
    )
    interval_s: float = Field(default=1.0, gt=0, description="Adaptive: one decision per interval.")
    linger_ms: float = Field(default=5.0, ge=0, description="Micro-batch linger.")
    max_batch: int = Field(default=64, ge=1, description="Micro-batch size cap.")
    buffer: int = Field(
        default=1024,
        ge=1,
        description="Messages read ahead of the window. The partitions pause when it is full "
        "and resume when half of it is free: each pause drops librdkafka's prefetched data and "
        "fetching restarts up to fetch.wait.max.ms later, so the half left must outlast that.",
    )

    @model_validator(mode="after")
    def _bounds(self) -> WindowSettings:
        if self.min > self.max:
            raise ValueError(f"window.min ({self.min}) exceeds window.max ({self.max})")
        return self


class CacheSettings(_Section):
    """The result cache: a request evaluated before is answered without an engine call.

    Off by default: with it, a request sent again to be evaluated again (say, to sample another
    opinion at temperature > 0) gets the first answer back, and the cache needs a compacted
    topic. Turn it on where upstream re-sends (applications twice, imports re-run, replays).
    """

    enabled: bool = False
    topic: str = "evalstream.cache"
    max_entries: int = Field(default=100_000, ge=1, description="Entries kept in memory (LRU).")
    load_timeout_s: float = Field(
        default=60.0, gt=0, description="At start-up, read the cache topic for at most this long."
    )

    @field_validator("topic")
    @classmethod
    def _topic(cls, value: str) -> str:
        return topic_name(value, where("cache", "topic"))


class LaneSettings(_Section):
    """The interactive lane: a second requests topic that overtakes the bulk backlog.

    Off until ``interactive_topic`` is set. Its requests are admitted before any bulk
    request, may use ``reserve`` slots beyond the window, and have their own read-ahead, so
    a full bulk backlog never pauses the interactive partitions.
    """

    interactive_topic: str | None = None
    reserve: int = Field(
        default=8, ge=0, description="Slots interactive requests may use beyond the window."
    )
    buffer: int = Field(
        default=64, ge=1, description="Interactive requests held before their partitions pause."
    )
    bulk_limit: int | None = Field(
        default=None,
        ge=1,
        description="Bulk requests in flight at most while the interactive lane is active (an "
        "interactive request in the worker, or one within hold_s). None: no limit, the engine's "
        "batch stays full and an interactive request decodes in it at the full batch's pace.",
    )
    hold_s: float = Field(
        default=30.0, gt=0, description="How long the lane stays active after its last request."
    )
    engine_priority: int | None = Field(
        default=None,
        description="vLLM `priority` sent with interactive requests (lower runs sooner; the "
        "server needs --scheduling-policy priority). None: not sent.",
    )

    @field_validator("interactive_topic")
    @classmethod
    def _topic(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return topic_name(value, where("lanes", "interactive_topic", "--interactive-topic"))


class RetrySettings(_Section):
    """Retries of retriable engine errors (exponential backoff with full jitter)."""

    max_attempts: int = Field(
        default=10,
        ge=1,
        description="Attempts while the engine is up: with full-jitter backoff capped at "
        "backoff_max_s, about a minute of retrying, so a burst of 5xx does not dead-letter.",
    )
    backoff_initial_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=30.0, gt=0)
    circuit_failures: int = Field(
        default=5, ge=1, description="Consecutive connect failures that open the circuit."
    )


class MetricsSettings(_Section):
    """The HTTP endpoint with /metrics, /healthz and /readyz."""

    host: str = "127.0.0.1"
    port: int = Field(default=9400, ge=0, le=65535, description="0 picks a free port.")
    enabled: bool = True


class Settings(BaseSettings):
    """Everything the worker needs, frozen once built."""

    model_config = SettingsConfigDict(
        env_prefix="EVALSTREAM_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    kafka: KafkaSettings = KafkaSettings()
    engine: EngineSettings = EngineSettings()
    window: WindowSettings = WindowSettings()
    retry: RetrySettings = RetrySettings()
    cache: CacheSettings = CacheSettings()
    lanes: LaneSettings = LaneSettings()
    metrics: MetricsSettings = MetricsSettings()
    worker_id: str = Field(default_factory=socket.gethostname)
    gpu: str | None = Field(default=None, description="GPU index this worker is bound to.")
    shutdown_grace_s: float = Field(
        default=25.0,
        gt=0,
        description="Drain time on SIGTERM; keep it below Kubernetes' "
        "terminationGracePeriodSeconds (30 s by default).",
    )
    rebalance_deadline_s: float = Field(default=10.0, gt=0)
    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _distinct_lane(self) -> Settings:
        lane, kafka = self.lanes.interactive_topic, self.kafka
        if lane in (kafka.requests_topic, kafka.results_topic, kafka.dlq_topic):
            raise ValueError(
                f"lanes.interactive_topic {lane!r} must differ from the requests, results and "
                "dead-letter topics (set by --interactive-topic or "
                "EVALSTREAM_LANES__INTERACTIVE_TOPIC)"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Strongest first: flags (passed as init arguments), environment, file, then defaults.
        file = _FILE_SOURCE.get()
        sources = (init_settings, env_settings)
        return sources if file is None else (*sources, file)


CONFIG_FILE_ENV = "EVALSTREAM_CONFIG_FILE"

# The parsed file of the `load_settings` call in progress; a context variable, so that two
# constructions (two test threads) never see each other's file.
_FILE_SOURCE: ContextVar[PydanticBaseSettingsSource | None] = ContextVar(
    "evalstream_config_file", default=None
)

# Suffix -> (format name, pydantic-settings' source for it).
_FORMATS: dict[str, tuple[str, Callable[[Path], PydanticBaseSettingsSource]]] = {
    ".toml": ("TOML", lambda path: TomlConfigSettingsSource(Settings, toml_file=path)),
    ".yaml": ("YAML", lambda path: YamlConfigSettingsSource(Settings, yaml_file=path)),
    ".yml": ("YAML", lambda path: YamlConfigSettingsSource(Settings, yaml_file=path)),
    ".json": ("JSON", lambda path: JsonConfigSettingsSource(Settings, json_file=path)),
}


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Builds the settings from flags (``overrides``), environment and file.

    Args:
        config_file: a ``.toml``, ``.yaml``/``.yml`` or ``.json`` file; None reads the path
            from ``EVALSTREAM_CONFIG_FILE``, where set.
        overrides: values that win over every other source (nested dicts per section).

    Raises:
        ConfigError: the file is missing, unreadable or malformed (one line naming it).
        pydantic.ValidationError: a value is invalid; the message names the field.
    """
    source = _file_source(config_file)
    token = _FILE_SOURCE.set(source)
    try:
        return Settings(**overrides)
    finally:
        _FILE_SOURCE.reset(token)


def _file_source(config_file: Path | None) -> PydanticBaseSettingsSource | None:
    """The parsed configuration file, or None when neither the flag nor the variable names one."""
    from consumer.errors import ConfigError

    given_by = "--config"
    if config_file is None:
        named = os.environ.get(CONFIG_FILE_ENV, "")
        if not named:
            return None
        config_file, given_by = Path(named), CONFIG_FILE_ENV
    where_from = f"(set by {given_by})"
    if not config_file.is_file():
        raise ConfigError(f"config file {config_file} does not exist {where_from}")
    kind = _FORMATS.get(config_file.suffix.lower())
    if kind is None:
        raise ConfigError(
            f"config file {config_file}: unknown format {config_file.suffix!r}, use .toml, "
            f".yaml, .yml or .json {where_from}"
        )
    name, build = kind
    try:
        # The sources parse the file when built, so every syntax error surfaces here.
        return build(config_file)
    except (OSError, ValueError, TypeError, yaml.YAMLError) as exc:
        detail = " ".join(str(exc).split())  # YAML's messages span lines
        if "dictionary update sequence" in detail:
            # The source merges the file into a dict: a top-level list or scalar fails there.
            detail = "its top level must be a mapping of sections and fields"
        raise ConfigError(
            f"config file {config_file} is not valid {name}: {detail} {where_from}"
        ) from exc
