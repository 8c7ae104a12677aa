"""The worker's configuration: one frozen object, built once in ``__main__``.

Sources, strongest first: command-line flags, ``EVALSTREAM_*`` environment variables
(nested sections with ``__``, e.g. ``EVALSTREAM_ENGINE__URL``), an optional TOML, YAML or
JSON file (``--config``, else ``EVALSTREAM_CONFIG_FILE``; its keys are the sections and
fields below, e.g. ``[kafka] group_id = "g"``), then the defaults below.
Nothing else in the package reads the environment (`consumer.config_file` reads the
file's name).
"""

from __future__ import annotations

import socket
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import (
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
)

from consumer.config_file import CONFIG_FILE_ENV, file_source
from consumer.engine_settings import EngineSettings, VariantSettings
from consumer.setting_checks import Section, topic_name, where

__all__ = [
    "CONFIG_FILE_ENV",
    "CacheSettings",
    "EngineSettings",
    "KafkaSettings",
    "LaneSettings",
    "MetricsSettings",
    "RetrySettings",
    "Settings",
    "VariantSettings",
    "WindowSettings",
    "load_settings",
]


class KafkaSettings(Section):
    """Broker, topics, group and delivery guarantee."""

    bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        description="Kafka brokers, host:port[,host:port...].",
        json_schema_extra={"flag": "--bootstrap-servers"},
    )
    group_id: str = Field(
        default="evalstream",
        description="Consumer group id; every worker of one deployment shares it.",
        json_schema_extra={"flag": "--group"},
    )
    requests_topic: str = Field(
        default="evalstream.requests",
        description="Topic the requests are read from.",
        json_schema_extra={"flag": "--requests-topic"},
    )
    results_topic: str = Field(
        default="evalstream.results",
        description="Topic the results are published to.",
        json_schema_extra={"flag": "--results-topic"},
    )
    dlq_topic: str = Field(
        default="evalstream.dlq",
        description="Dead-letter topic: requests that cannot be evaluated, with the reason.",
        json_schema_extra={"flag": "--dlq-topic"},
    )
    processing_guarantee: Literal["at_least_once", "exactly_once"] = Field(
        default="at_least_once",
        description="exactly_once publishes results and commits offsets in one Kafka transaction.",
        json_schema_extra={"flag": "--processing-guarantee"},
    )

    @field_validator("requests_topic", "results_topic", "dlq_topic")
    @classmethod
    def _topic(cls, value: str, info: ValidationInfo) -> str:
        name = str(info.field_name)
        return topic_name(value, where("kafka", name, "--" + name.replace("_", "-")))

    commit_interval_s: float = Field(
        default=1.0, gt=0, description="Seconds between offset commits (or transactions)."
    )
    max_request_bytes: int = Field(
        default=1_048_576, ge=1024, description="Larger request values are dead-lettered."
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="How the clients talk to the brokers."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        default=None, description="SASL mechanism, with SASL_PLAINTEXT or SASL_SSL."
    )
    sasl_username: str | None = Field(default=None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(
        default=None, description="SASL password (environment or file only, never a flag)."
    )
    ssl_ca_location: Path | None = Field(
        default=None, description="CA certificate file that signed the brokers' certificates."
    )
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


class WindowSettings(Section):
    """How many requests may be in the engine at once."""

    policy: Literal["adaptive", "fixed"] = Field(
        default="adaptive",
        description="adaptive finds the engine's best concurrency; fixed keeps window.size.",
    )
    size: int = Field(
        default=32,
        ge=1,
        description="Fixed size, or the adaptive start.",
        json_schema_extra={"flag": "--window"},
    )
    min: int = Field(default=4, ge=1, description="Adaptive: the smallest window.")
    max: int = Field(
        default=1024,
        ge=1,
        description="The largest window (vLLM runs up to 1,024 requests at once on an H200: "
        "its default max_num_seqs).",
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


class CacheSettings(Section):
    """The result cache: a request evaluated before is answered without an engine call.

    Off by default: with it, a request sent again to be evaluated again (say, to sample another
    opinion at temperature > 0) gets the first answer back, and the cache needs a compacted
    topic. Turn it on where upstream re-sends (applications twice, imports re-run, replays).
    """

    enabled: bool = Field(
        default=False,
        description="Answer requests evaluated before from the result cache.",
        json_schema_extra={"flag": "--cache"},
    )
    topic: str = Field(default="evalstream.cache", description="The cache's compacted topic.")
    max_entries: int = Field(default=100_000, ge=1, description="Entries kept in memory (LRU).")
    load_timeout_s: float = Field(
        default=60.0, gt=0, description="At start-up, read the cache topic for at most this long."
    )

    @field_validator("topic")
    @classmethod
    def _topic(cls, value: str) -> str:
        return topic_name(value, where("cache", "topic"))


class LaneSettings(Section):
    """The interactive lane: a second requests topic that overtakes the bulk backlog.

    Off until ``interactive_topic`` is set. Its requests are admitted before any bulk
    request, may use ``reserve`` slots beyond the window, and have their own read-ahead, so
    a full bulk backlog never pauses the interactive partitions.
    """

    interactive_topic: str | None = Field(
        default=None,
        description="Also consume this topic as the interactive lane, admitted before the bulk "
        "backlog.",
        json_schema_extra={"flag": "--interactive-topic"},
    )
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


class RetrySettings(Section):
    """Retries of retriable engine errors (exponential backoff with full jitter)."""

    max_attempts: int = Field(
        default=10,
        ge=1,
        description="Attempts while the engine is up: with full-jitter backoff capped at "
        "backoff_max_s, about a minute of retrying, so a burst of 5xx does not dead-letter.",
    )
    backoff_initial_s: float = Field(default=0.5, gt=0, description="First backoff's cap.")
    backoff_max_s: float = Field(default=30.0, gt=0, description="Longest backoff.")
    circuit_failures: int = Field(
        default=5, ge=1, description="Consecutive connect failures that open the circuit."
    )


class MetricsSettings(Section):
    """The HTTP endpoint with /metrics, /healthz and /readyz."""

    host: str = Field(
        default="127.0.0.1", description="Address to listen on (0.0.0.0: every interface)."
    )
    port: int = Field(default=9400, ge=0, le=65535, description="0 picks a free port.")
    enabled: bool = Field(default=True, description="Serve the endpoint at all.")


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
    worker_id: str = Field(
        default_factory=socket.gethostname,
        description="Names this worker in results, logs and metrics.",
        json_schema_extra={"default_help": "the host name"},
    )
    gpu: str | None = Field(default=None, description="GPU index this worker is bound to.")
    shutdown_grace_s: float = Field(
        default=25.0,
        gt=0,
        description="Drain time on SIGTERM; keep it below Kubernetes' "
        "terminationGracePeriodSeconds (30 s by default).",
    )
    rebalance_deadline_s: float = Field(
        default=10.0, gt=0, description="Time a revoked partition's work may take to finish."
    )
    test_faults: bool = Field(
        default=False,
        description="Test-only (the fault suite): SIGUSR1 makes a worker task raise, SIGUSR2 "
        "reports a fatal error of the results producer. Never set it in production.",
        json_schema_extra={"no_flag": True},  # EVALSTREAM_TEST_FAULTS only: no worker flag
    )
    log_format: Literal["text", "json"] = Field(default="text", description="Log line format.")
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR.")

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


# The parsed file of the `load_settings` call in progress; a context variable, so that two
# constructions (two test threads) never see each other's file.
_FILE_SOURCE: ContextVar[PydanticBaseSettingsSource | None] = ContextVar(
    "evalstream_config_file", default=None
)


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
    token = _FILE_SOURCE.set(file_source(Settings, config_file))
    try:
        return Settings(**overrides)
    finally:
        _FILE_SOURCE.reset(token)
