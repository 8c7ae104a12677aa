"""The command line without a broker: schema, synth, argument and input errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from consumer.schemas import BatchRequestLine, json_schemas, parse_request
from producer.__main__ import DEFAULT_EXPECT_IDLE_S, DEFAULT_IDLE_S, main, parse_args

pytestmark = pytest.mark.timeout(30)


def test_schema_prints_all_schemas_or_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == json_schemas()
    assert main(["schema", "--name", "evaluation"]) == 0
    assert json.loads(capsys.readouterr().out) == json_schemas()["evaluation"]


def test_schema_rejects_unknown_names(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["schema", "--name", "nope"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_synth_writes_valid_deterministic_jsonl(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth", "--count", "4", "--seed", "3", "--jobs", "2"]) == 0
    first = capsys.readouterr().out
    assert main(["synth", "--count", "4", "--seed", "3", "--jobs", "2"]) == 0
    assert capsys.readouterr().out == first
    requests = [parse_request(line.encode()) for line in first.splitlines()]
    assert [
        request.custom_id if isinstance(request, BatchRequestLine) else request.id
        for request in requests
    ] == ["req-000001", "req-000002", "req-000003", "req-000004"]
    assert '"created_at"' not in first


def test_synth_batch_format_to_a_file(tmp_path: Path) -> None:
    out = tmp_path / "batch.jsonl"
    args = [
        "synth",
        "--count",
        "2",
        "--seed",
        "1",
        "--batch-format",
        "--model",
        "m",
        "-o",
        str(out),
    ]
    assert main(args) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [list(line) for line in lines] == [["custom_id", "method", "url", "body"]] * 2
    assert lines[0]["body"]["model"] == "m"


def test_synth_batch_format_names_no_model_unless_asked(tmp_path: Path) -> None:
    # A made-up name ("default") is dead-lettered by a worker that does not serve it; a body
    # without a model goes to the worker's default model.
    out = tmp_path / "batch.jsonl"
    assert main(["synth", "--count", "2", "--seed", "1", "--batch-format", "-o", str(out)]) == 0
    bodies = [json.loads(line)["body"] for line in out.read_text().splitlines()]
    assert [sorted(body) for body in bodies] == [["max_tokens", "messages"]] * 2


def test_synth_timestamps(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth", "--count", "1", "--timestamps"]) == 0
    assert "created_at" in json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(
    "args",
    [
        ["synth", "--count", "0"],
        ["publish", "x.jsonl", "--rate", "-1"],
        ["collect"],  # --out is required
        ["status", "--topic", "t"],  # --group is required
    ],
)
def test_bad_arguments_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_unusable_inputs_exit_1_before_connecting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["publish", str(tmp_path / "absent.jsonl")]) == 1
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "in.csv").write_text("id\n")
    assert main(["publish", str(tmp_path / "in.csv"), "--input", "csv", "--csv-map", "x"]) == 1
    assert "--csv-map: expected column=field" in capsys.readouterr().err
    assert main(["collect", "--out", str(tmp_path / "results.txt")]) == 1
    assert "pass --format" in capsys.readouterr().err
    assert main(["publish", str(tmp_path / "in.csv"), "--header", "novalue"]) == 1
    assert "--header: expected KEY=VALUE" in capsys.readouterr().err


def test_collect_with_expect_keeps_an_idle_limit_unless_told_to_wait_for_ever(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert parse_args(["collect", "--out", "r.db"]).until_idle == DEFAULT_IDLE_S
    assert parse_args(["collect", "--out", "r.db", "--expect", "5"]).until_idle == (
        DEFAULT_EXPECT_IDLE_S
    )
    assert parse_args(["collect", "--out", "r.db", "--expect", "5", "--until-idle", "7"]).until_idle
    forever = parse_args(["collect", "--out", "r.db", "--expect", "5", "--no-idle-limit"])
    assert forever.until_idle is None
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["collect", "--out", "r.db", "--no-idle-limit"])
    assert exit_info.value.code == 2
    assert "error: --no-idle-limit needs --expect" in capsys.readouterr().err


def test_collect_reads_the_dead_letter_topic_by_default() -> None:
    assert parse_args(["collect", "--out", "r.db"]).dlq_topic == "evalstream.dlq"
    named = parse_args(["collect", "--out", "r.db", "--dlq-topic", "d"])
    assert (named.dlq_topic, named.dlq_explicit) == ("d", True)
    assert parse_args(["collect", "--out", "r.db", "--no-dlq"]).dlq_topic is None


def test_bootstrap_servers_from_the_worker_variable_or_the_deprecated_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("EVALSTREAM_KAFKA__BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("KAFKA_BOOTSTRAP", raising=False)
    assert parse_args(["status", "--group", "g"]).bootstrap_servers == "localhost:9092"
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "old:9092")
    assert parse_args(["status", "--group", "g"]).bootstrap_servers == "old:9092"
    assert capsys.readouterr().err == (
        "warning: $KAFKA_BOOTSTRAP is deprecated; "
        "set $EVALSTREAM_KAFKA__BOOTSTRAP_SERVERS instead (the worker reads it too)\n"
    )
    monkeypatch.setenv("EVALSTREAM_KAFKA__BOOTSTRAP_SERVERS", "new:9092")
    assert parse_args(["status", "--group", "g"]).bootstrap_servers == "new:9092"
    given = parse_args(["status", "--group", "g", "--bootstrap-servers", "given:1"])
    assert given.bootstrap_servers == "given:1"
    assert capsys.readouterr().err == ""  # the old variable is not read when not needed
