"""The N-GPU overrides of ``docker-compose.yml`` that ``evalstream_local.compose`` writes.

Merged with the base file, each override must pass ``config`` of every compose implementation
installed and bind one engine and one worker to each GPU: its own device, published ports and
engine URL, as the worker's own settings parse its ``EVALSTREAM_*`` variables. It must add the
extra services' Prometheus targets and size the requests topic to the GPUs; the checked-in
examples under deploy/compose must be what the generator writes now.

A test whose tool is missing skips and says which tool and how to install it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from evalstream_local.compose import (
    ENGINES,
    ComposeOverride,
    default_partitions,
    load_base,
    write,
)
from evalstream_local.compose import main as compose_main
from tests.unit.deploy_tools import (
    COMPOSE_FILE,
    COMPOSE_TOOLS,
    ROOT,
    devices,
    effective_settings,
    environment,
    primary,
)


def _published(port: Any) -> tuple[str, int, int]:
    """(host ip, host port, container port) of a short or long port entry.

    Some compose implementations print the short form with its protocol
    (``127.0.0.1:9400:9400/tcp``); the protocol is dropped.
    """
    if isinstance(port, dict):
        return str(port.get("host_ip", "")), int(port["published"]), int(port["target"])
    *address, host, container = str(port).split(":")
    return ":".join(address), int(host), int(container.split("/")[0])


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "port",
    [
        "127.0.0.1:9400:9400",
        "127.0.0.1:9400:9400/tcp",  # compose 1.x prints the protocol on some systems
        {"host_ip": "127.0.0.1", "published": "9400", "target": 9400, "protocol": "tcp"},
    ],
)
def test_port_entries_read_the_same_in_every_form(port: Any) -> None:
    assert _published(port) == ("127.0.0.1", 9400, 9400)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("gpus", [1, 2, 3, 4, 8, 16])
def test_default_partitions_are_a_multiple_of_the_gpus(gpus: int) -> None:
    partitions = default_partitions(gpus)
    assert partitions % gpus == 0
    assert partitions >= max(gpus, 8)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("gpus", [1, 2, 4])
def test_generated_override_binds_one_engine_and_one_worker_per_gpu(
    gpus: int,
    tmp_path: Path,
    clean_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    override = write(
        ComposeOverride(load_base(COMPOSE_FILE), ENGINES["vllm"], gpus), tmp_path / "out", ROOT
    )
    for tool in COMPOSE_TOOLS:  # every implementation accepts the merged files
        tool.config([COMPOSE_FILE, override], ["vllm"], tmp_path)
    services = primary().config([COMPOSE_FILE, override], ["vllm"], tmp_path)["services"]

    engines = sorted(name for name in services if re.fullmatch(r"vllm-\d+", name))
    workers = sorted(name for name in services if re.fullmatch(r"worker-vllm-\d+", name))
    assert engines == [f"vllm-{i}" for i in range(gpus)]
    assert workers == [f"worker-vllm-{i}" for i in range(gpus)]
    gpu_ids = [devices(services[name])[0]["device_ids"] for name in engines]
    assert gpu_ids == [[str(i)] for i in range(gpus)], "each engine pinned to its own GPU"

    host_ports: list[int] = []
    for i, name in enumerate(workers):
        worker = services[name]
        assert f"vllm-{i}" in worker["depends_on"]
        assert not any(f"vllm-{j}" in worker["depends_on"] for j in range(gpus) if j != i)
        settings = effective_settings(environment(worker), clean_env, capsys)
        assert settings["gpu"] == str(i)
        assert settings["engine"]["url"] == f"http://vllm-{i}:8000"
        host_ports += [_published(p)[1] for p in worker["ports"]]
        host_ports += [_published(p)[1] for p in services[f"vllm-{i}"]["ports"]]
    assert len(host_ports) == len(set(host_ports)), "published ports collide"
    assert environment(services["kafka-init"])["PARTITIONS"] == str(default_partitions(gpus))


@pytest.mark.timeout(60)
def test_generated_override_adds_prometheus_targets(tmp_path: Path) -> None:
    override = write(
        ComposeOverride(load_base(COMPOSE_FILE), ENGINES["vllm"], 4), tmp_path / "out", ROOT
    )
    targets = override.with_suffix(".targets")
    workers = yaml.safe_load((targets / "evalstream-worker.yml").read_text())
    engines = yaml.safe_load((targets / "vllm.yml").read_text())
    assert workers == [{"targets": [f"worker-vllm-{i}:9400" for i in (1, 2, 3)]}]
    assert engines == [
        {"targets": [f"vllm-{i}:8000"], "labels": {"gpu": str(i)}} for i in (1, 2, 3)
    ]
    prometheus = primary().config([COMPOSE_FILE, override], ["vllm"], tmp_path)["services"][
        "prometheus"
    ]
    mounts = [
        v if isinstance(v, str) else f"{v['source']}:{v['target']}" for v in prometheus["volumes"]
    ]
    assert any(m.startswith(str(targets)) and ":/etc/prometheus/targets" in m for m in mounts)


@pytest.mark.timeout(120)
def test_generated_ollama_override_shares_one_model_pull(
    tmp_path: Path, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    override = write(
        ComposeOverride(load_base(COMPOSE_FILE), ENGINES["ollama"], 2), tmp_path / "out", ROOT
    )
    services = primary().config([COMPOSE_FILE, override], ["ollama"], tmp_path)["services"]
    assert devices(services["ollama-1"])[0]["device_ids"] == ["1"]
    worker = services["worker-ollama-1"]
    assert set(worker["depends_on"]) == {"kafka-init", "ollama-pull", "ollama-1"}
    settings = effective_settings(environment(worker), clean_env, capsys)
    assert settings["engine"]["url"] == "http://ollama-1:11434"
    assert settings["engine"]["backend"] == "ollama"
    assert not (override.with_suffix(".targets") / "ollama.yml").exists()  # no /metrics


@pytest.mark.timeout(30)
@pytest.mark.parametrize("gpus", [2, 4])
def test_checked_in_examples_are_current(gpus: int) -> None:
    path = ROOT / "deploy" / "compose" / f"gpus-{gpus}-vllm.yml"
    override = ComposeOverride(load_base(COMPOSE_FILE), ENGINES["vllm"], gpus)
    source = f"./deploy/compose/gpus-{gpus}-vllm.targets"
    regenerate = f"python -m evalstream_local.compose --gpus {gpus} --out deploy/compose"
    assert yaml.safe_load(path.read_text()) == override.document(source), regenerate
    for name, document in override.targets().items():
        checked_in = yaml.safe_load((path.with_suffix(".targets") / name).read_text())
        assert checked_in == document, regenerate


@pytest.mark.timeout(30)
def test_generator_prints_the_override(capsys: pytest.CaptureFixture[str]) -> None:
    assert compose_main(["--gpus", "2", "--base", str(COMPOSE_FILE)]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert set(printed["services"]) == {"kafka-init", "vllm-1", "worker-vllm-1"}


@pytest.mark.timeout(30)
def test_generator_rejects_a_base_without_gpu_services(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = tmp_path / "compose.yml"
    base.write_text("services:\n  kafka:\n    image: apache/kafka:4.1.1\n")
    assert compose_main(["--gpus", "2", "--base", str(base)]) == 2
    assert "vllm-0" in capsys.readouterr().err
    assert compose_main(["--gpus", "0", "--base", str(COMPOSE_FILE)]) == 2
