"""The worker's configuration: one frozen object, built once in ``__main__``.

Sources, strongest first: command-line flags, ``EVALSTREAM_*`` environment variables
(nested sections with ``__``, e.g. ``EVALSTREAM_ENGINE__URL``), an optional TOML or
YAML file (``--config`` or ``EVALSTREAM_CONFIG_FILE``), then the defaults below.
Nothing else in the package reads the environment.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)

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


class EngineSettings(_Section):
    """The inference engine this worker drives (one engine per GPU)."""

    backend: Literal["openai", "ollama"] = "openai"
    url: str = "http://127.0.0.1:8000"
    model: str = "google/gemma-3-1b-it"
    api_key: SecretStr | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return http_url(value, where("engine", "url", "--engine-url"))

    api: Literal["chat", "completions"] = Field(
        default="chat",
        description="openai backend: one chat call per request, or /v1/completions with a "
        "list of prompts per micro-batch.",
    )
    structured_output: bool = True
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
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    timeout_s: float = Field(default=600.0, gt=0)
    keep_alive: str = Field(default="30m", description="Ollama: how long the model stays loaded.")
    num_ctx: int | None = Field(default=None, description="Ollama: context window.")
    extra_body: dict[str, Any] = Field(
        default_factory=dict,
        description="Engine-specific request fields merged into every call "
        '(vLLM: {"ignore_eos": true, "min_tokens": 150}).',
    )
    variants: list[VariantSettings] = Field(
        default_factory=list,
        description='A/B split, e.g. [{"name": "a", "model": "m1", "weight": 0.9}, '
        '{"name": "b", "model": "m2", "weight": 0.1}]; empty: everything to `model`.',
    )
    prompt_template: Path | None = Field(
        default=None, description="A TOML prompt template replacing the built-in one."
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
    test_faults: bool = Field(
        default=False,
        description="Test-only (the fault suite): SIGUSR1 makes a worker task raise, SIGUSR2 "
        "reports a fatal error of the results producer. Never set it in production.",
    )
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
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _CONFIG_FILE.get("path")
        if path is not None:
            if path.suffix in {".yaml", ".yml"}:
                sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
            else:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


# Set only by `load_settings` for the duration of one construction.
_CONFIG_FILE: dict[str, Path | None] = {"path": None}


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Builds the settings from flags (``overrides``), environment and file.

    Args:
        config_file: a ``.toml``, ``.yaml`` or ``.yml`` file, or None.
        overrides: values that win over every other source (nested dicts per section).

    Raises:
        ConfigError: the file does not exist.
        pydantic.ValidationError: a value is invalid; the message names the field.
    """
    from consumer.errors import ConfigError

    if config_file is not None and not config_file.is_file():
        raise ConfigError(f"config file {config_file} does not exist")
    _CONFIG_FILE["path"] = config_file
    try:
        return Settings(**overrides)
    finally:
        _CONFIG_FILE["path"] = None
