"""Settings: flags over environment over file; secrets never printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from consumer.__main__ import _parser, settings_from_args
from consumer.errors import ConfigError
from consumer.settings import load_settings

pytestmark = pytest.mark.timeout(10)


def test_flags_win_over_environment_which_wins_over_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "worker.toml"
    path.write_text(
        '[kafka]\ngroup_id = "from-file"\nrequests_topic = "file-topic"\n'
        '[engine]\nmodel = "file-model"\n'
    )
    monkeypatch.setenv("EVALSTREAM_KAFKA__GROUP_ID", "from-env")
    monkeypatch.setenv("EVALSTREAM_ENGINE__MODEL", "env-model")
    args = _parser().parse_args(["--config", str(path), "--model", "flag-model"])
    settings = settings_from_args(args)
    assert settings.engine.model == "flag-model"
    assert settings.kafka.group_id == "from-env"
    assert settings.kafka.requests_topic == "file-topic"


def test_yaml_file_and_gpu_placeholder(tmp_path: Path) -> None:
    path = tmp_path / "worker.yaml"
    path.write_text("engine:\n  url: http://vllm-{gpu}:8000\ngpu: '3'\n")
    settings = settings_from_args(_parser().parse_args(["--config", str(path)]))
    assert settings.engine.url == "http://vllm-3:8000"


def test_secrets_are_masked_in_dumps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALSTREAM_KAFKA__SASL_PASSWORD", "hunter2-kafka")
    monkeypatch.setenv("EVALSTREAM_ENGINE__API_KEY", "sk-engine-secret")
    settings = load_settings()
    dumped = json.dumps(settings.model_dump(mode="json"))
    assert "hunter2-kafka" not in dumped
    assert "sk-engine-secret" not in dumped
    assert "hunter2-kafka" not in repr(settings)
    assert settings.kafka.client_config()["sasl.password"] == "hunter2-kafka"


def test_invalid_values_name_the_field() -> None:
    with pytest.raises(ValidationError, match="window"):
        load_settings(window={"min": 64, "max": 8})


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_metrics_bind_to_loopback_by_default() -> None:
    assert load_settings().metrics.host == "127.0.0.1"


@pytest.mark.parametrize("url", ["notaurl", "ftp://engine:8000", "http://", "http://engine:99999"])
def test_a_malformed_engine_url_is_refused_naming_its_flag_and_variable(url: str) -> None:
    with pytest.raises(ValidationError) as caught:
        load_settings(engine={"url": url})
    message = str(caught.value)
    assert "--engine-url" in message
    assert "EVALSTREAM_ENGINE__URL" in message


@pytest.mark.parametrize("topic", ["has space", "", "x" * 250, "..", "é"])
def test_an_illegal_topic_name_is_refused_naming_its_flag_and_variable(topic: str) -> None:
    with pytest.raises(ValidationError) as caught:
        load_settings(kafka={"dlq_topic": topic})
    message = str(caught.value)
    assert "--dlq-topic" in message
    assert "EVALSTREAM_KAFKA__DLQ_TOPIC" in message


def test_legal_urls_and_topics_are_kept() -> None:
    settings = load_settings(
        engine={"url": "https://vllm.internal:8443/"}, kafka={"requests_topic": "a.b_c-1"}
    )
    assert settings.engine.url == "https://vllm.internal:8443/"
    assert settings.kafka.requests_topic == "a.b_c-1"
