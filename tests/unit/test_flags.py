"""The worker's flags, generated from the settings model: every setting once, old names kept."""

from __future__ import annotations

import json
from typing import Any

import pytest

from consumer.__main__ import FLAGS, _parser, main, settings_from_args
from consumer.flags import overrides
from consumer.settings import Settings

pytestmark = pytest.mark.timeout(10)

# Every flag the worker took before its flags were generated, as README, docker-compose,
# deploy/, benchmarks/ (the GPU kit's e2e_workers.py) and tests/ pass them: (argv, path, value).
OLD_FLAGS: list[tuple[list[str], tuple[str, ...], Any]] = [
    (["--bootstrap-servers", "k:9093"], ("kafka", "bootstrap_servers"), "k:9093"),
    (["--group", "g1"], ("kafka", "group_id"), "g1"),
    (["--requests-topic", "rq"], ("kafka", "requests_topic"), "rq"),
    (["--results-topic", "rs"], ("kafka", "results_topic"), "rs"),
    (["--dlq-topic", "dl"], ("kafka", "dlq_topic"), "dl"),
    (["--processing-guarantee", "exactly_once"], ("kafka", "processing_guarantee"), "exactly_once"),
    (["--backend", "ollama"], ("engine", "backend"), "ollama"),
    (["--engine-url", "http://e:1"], ("engine", "url"), "http://e:1"),
    (["--model", "m1"], ("engine", "model"), "m1"),
    (["--api", "completions"], ("engine", "openai", "api"), "completions"),
    (["--max-tokens", "77"], ("engine", "max_tokens"), 77),
    (["--window-policy", "fixed"], ("window", "policy"), "fixed"),
    (["--window", "12"], ("window", "size"), 12),
    (["--window-max", "99"], ("window", "max"), 99),
    (["--cache"], ("cache", "enabled"), True),
    (["--no-cache"], ("cache", "enabled"), False),
    (["--interactive-topic", "fast"], ("lanes", "interactive_topic"), "fast"),
    (["--metrics-port", "9555"], ("metrics", "port"), 9555),
    (["--metrics-host", "0.0.0.0"], ("metrics", "host"), "0.0.0.0"),
    (["--worker-id", "w7"], ("worker_id",), "w7"),
    (["--gpu", "3"], ("gpu",), "3"),
    (["--log-format", "json"], ("log_format",), "json"),
    (["--log-level", "DEBUG"], ("log_level",), "DEBUG"),
]


def value_at(settings: Settings, path: tuple[str, ...]) -> Any:
    value: Any = settings
    for key in path:
        value = getattr(value, key)
    return value


@pytest.mark.parametrize(("argv", "path", "value"), OLD_FLAGS, ids=lambda x: str(x))
def test_every_old_flag_name_still_sets_its_setting(
    argv: list[str], path: tuple[str, ...], value: Any
) -> None:
    args = _parser().parse_args(argv)
    expected: Any = value
    for key in reversed(path):
        expected = {key: expected}
    assert overrides(args, FLAGS) == expected  # this flag sets that setting, and nothing else
    assert value_at(settings_from_args(args), path) == value


def load_defaults() -> Settings:
    return settings_from_args(_parser().parse_args([]))


def test_every_setting_but_the_secrets_has_one_flag_with_help_and_default() -> None:
    paths = {flag.path for flag in FLAGS}
    assert ("kafka", "sasl_password") not in paths
    assert ("engine", "api_key") not in paths
    assert ("engine", "ollama", "num_ctx") in paths  # a backend's own section too
    assert len({flag.name for flag in FLAGS}) == len(FLAGS)
    help_text = " ".join(_parser().format_help().split())
    for flag in FLAGS:
        assert flag.field.description, f"{flag.name} has no description"
        variable = "EVALSTREAM_" + flag.dest.upper()
        assert f"; {variable})" in help_text, flag.name
    assert "(default: 127.0.0.1:9092; EVALSTREAM_KAFKA__BOOTSTRAP_SERVERS)" in help_text
    assert "(default: the host name; EVALSTREAM_WORKER_ID)" in help_text
    assert "--api {chat,completions}" in help_text
    assert "--backend {openai,ollama}" in help_text


@pytest.mark.parametrize(
    ("argv", "path", "value"),
    [
        (["--kafka-commit-interval-s", "0.25"], ("kafka", "commit_interval_s"), 0.25),
        (["--engine-ollama-num-ctx", "4096"], ("engine", "ollama", "num_ctx"), 4096),
        (["--engine-ollama-keep-alive", "5m"], ("engine", "ollama", "keep_alive"), "5m"),
        (["--no-engine-structured-output"], ("engine", "structured_output"), False),
        (["--engine-extra-body", '{"min_tokens": 5}'], ("engine", "extra_body"), {"min_tokens": 5}),
        (["--lanes-bulk-limit", "3"], ("lanes", "bulk_limit"), 3),
        (["--shutdown-grace-s", "9"], ("shutdown_grace_s",), 9.0),
    ],
)
def test_generated_flags_reach_their_setting(
    argv: list[str], path: tuple[str, ...], value: Any
) -> None:
    assert value_at(settings_from_args(_parser().parse_args(argv)), path) == value


def test_a_flag_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALSTREAM_WINDOW__BUFFER", "100")
    assert load_defaults().window.buffer == 100
    assert settings_from_args(_parser().parse_args(["--window-buffer", "7"])).window.buffer == 7


def test_secrets_never_reach_help_or_the_printed_configuration(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EVALSTREAM_KAFKA__SASL_PASSWORD", "hunter2-kafka")
    monkeypatch.setenv("EVALSTREAM_ENGINE__API_KEY", "sk-engine-secret")
    assert main(["--check-config"]) == 0
    printed = capsys.readouterr().out
    assert json.loads(printed)["engine"]["api_key"] == "**********"
    with pytest.raises(SystemExit):
        _parser().parse_args(["--engine-api-key", "sk-on-the-command-line"])
    text = printed + _parser().format_help()
    assert "hunter2-kafka" not in text
    assert "sk-engine-secret" not in text
