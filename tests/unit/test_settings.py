"""Settings: flags over environment over file; secrets never printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from consumer.__main__ import _parser, main, settings_from_args
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


def test_the_config_file_variable_is_read_below_flags_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "worker.yaml"
    path.write_text(
        "kafka:\n  group_id: from-file\n  requests_topic: file-topic\n"
        "engine:\n  model: file-model\nwindow:\n  size: 7\n"
    )
    monkeypatch.setenv("EVALSTREAM_CONFIG_FILE", str(path))
    monkeypatch.setenv("EVALSTREAM_KAFKA__GROUP_ID", "from-env")
    monkeypatch.setenv("EVALSTREAM_ENGINE__MODEL", "env-model")
    settings = settings_from_args(_parser().parse_args(["--model", "flag-model"]))
    assert settings.engine.model == "flag-model"  # flag over environment
    assert settings.kafka.group_id == "from-env"  # environment over file
    assert settings.kafka.requests_topic == "file-topic"  # file over default
    assert settings.window.size == 7
    assert settings.kafka.results_topic == "evalstream.results"  # default


def test_the_config_flag_wins_over_the_config_file_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "env.json").write_text('{"kafka": {"group_id": "from-variable"}}')
    (tmp_path / "flag.json").write_text('{"kafka": {"group_id": "from-flag"}}')
    monkeypatch.setenv("EVALSTREAM_CONFIG_FILE", str(tmp_path / "env.json"))
    assert load_settings().kafka.group_id == "from-variable"
    assert load_settings(tmp_path / "flag.json").kafka.group_id == "from-flag"


@pytest.mark.parametrize(
    ("name", "text", "kind"),
    [
        ("w.toml", "[kafka\ngroup_id = 1", "TOML"),
        ("w.yaml", "kafka: {group_id: [", "YAML"),
        ("w.yml", "- a list\n- not sections", "YAML"),
        ("w.json", '{"kafka": ', "JSON"),
    ],
)
def test_a_malformed_config_file_is_one_line_naming_the_file_and_its_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, text: str, kind: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    monkeypatch.setenv("EVALSTREAM_CONFIG_FILE", str(path))
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert f"config file {path} is not valid {kind}:" in message
    assert message.endswith("(set by EVALSTREAM_CONFIG_FILE)")
    assert "\n" not in message


def test_an_unknown_config_file_format_and_a_missing_file_exit_2_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ini = tmp_path / "worker.ini"
    ini.write_text("[kafka]\n")
    assert main(["--config", str(ini), "--check-config"]) == 2
    assert capsys.readouterr().err == (
        f"evalstream-consumer: config file {ini}: unknown format '.ini', use .toml, .yaml, "
        ".yml or .json (set by --config)\n"
    )
    monkeypatch.setenv("EVALSTREAM_CONFIG_FILE", str(tmp_path / "gone.toml"))
    assert main(["--check-config"]) == 2
    assert capsys.readouterr().err == (
        f"evalstream-consumer: config file {tmp_path / 'gone.toml'} does not exist "
        "(set by EVALSTREAM_CONFIG_FILE)\n"
    )


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
