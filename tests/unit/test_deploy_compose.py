"""``docker-compose.yml``, checked by the compose implementations installed.

``config`` of Docker Compose v2+ (``docker compose``, see deploy/compose/install-compose.sh)
and of the old Python docker-compose 1.x where present (Debian's ``docker-compose``) must
accept every profile. The newest one's rendering must wire each profile's worker to its
engine (GPU reservation, health checks, start order) and run vLLM with the measured flags;
every ``EVALSTREAM_*`` variable a worker gets is parsed by the worker's own settings. The N-GPU
overrides of ``evalstream_local.compose``: test_deploy_gpu_overrides.py.

The several-engines-on-one-GPU overrides (deploy/compose/engines-N-per-gpu.yml), merged with the
base file: their engine shares fit the card with each process's overhead, the engines start one
after another, each worker drives its own engine in the one group, the extra engines are the
base's vllm-0 but for share, port and start order, and Prometheus scrapes every worker.

A test whose tool is missing skips and says which tool and how to install it.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.deploy_tools import (
    COMPOSE_FILE,
    COMPOSE_TOOLS,
    NO_COMPOSE,
    ROOT,
    ComposeTool,
    devices,
    effective_settings,
    environment,
    primary,
    published,
)

PROFILES = ("cpu", "vllm", "ollama")


def _tool_id(tool: ComposeTool) -> str:
    return f"compose-{tool.version}"


_TOOL_PARAMS: list[ComposeTool | None] = [*COMPOSE_TOOLS] or [None]


@pytest.fixture(params=_TOOL_PARAMS, ids=lambda t: _tool_id(t) if t else "none")
def compose_tool(request: pytest.FixtureRequest) -> ComposeTool:
    tool: ComposeTool | None = request.param
    if tool is None:
        pytest.skip(NO_COMPOSE)
    return tool


@pytest.mark.timeout(120)
@pytest.mark.parametrize("profile", PROFILES)
def test_compose_file_is_valid(compose_tool: ComposeTool, profile: str, tmp_path: Path) -> None:
    model = compose_tool.config([COMPOSE_FILE], [profile], tmp_path)
    assert {"kafka", "kafka-init", "prometheus", "grafana"} <= set(model["services"])


@pytest.mark.timeout(60)
def test_demo_profile_is_valid(compose_tool: ComposeTool, tmp_path: Path) -> None:
    model = compose_tool.config([COMPOSE_FILE], ["cpu", "demo"], tmp_path)
    assert "demo-load" in model["services"]


ENGINE_OF = {"cpu": "simulator", "vllm": "vllm-0", "ollama": "ollama-0"}
WORKER_OF = {"cpu": "worker-sim", "vllm": "worker-vllm-0", "ollama": "worker-ollama-0"}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("profile", PROFILES)
def test_profile_wires_one_worker_to_its_engine(
    profile: str,
    tmp_path: Path,
    clean_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    services = primary().config([COMPOSE_FILE], [profile], tmp_path)["services"]
    engine, worker = services[ENGINE_OF[profile]], services[WORKER_OF[profile]]
    if profile != "cpu":
        assert devices(engine) == [
            {"driver": "nvidia", "device_ids": ["0"], "capabilities": ["gpu"]}
        ]
    assert "healthcheck" in engine
    assert worker["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"
    assert worker["depends_on"][ENGINE_OF[profile]]["condition"] == "service_healthy"
    settings = effective_settings(environment(worker), clean_env, capsys)
    host = settings["engine"]["url"].split("//")[1].split(":")[0]
    assert host == ENGINE_OF[profile]
    assert settings["kafka"]["bootstrap_servers"] == "kafka:19092"
    assert settings["metrics"]["host"] == "0.0.0.0"


@pytest.mark.timeout(60)
def test_vllm_engine_runs_the_measured_flags(tmp_path: Path) -> None:
    engine = primary().config([COMPOSE_FILE], ["vllm"], tmp_path)["services"]["vllm-0"]
    command = " ".join(engine["command"])
    for flag in (
        "--max-num-batched-tokens 16384",
        "--enable-prefix-caching",
        "--gpu-memory-utilization 0.90",
        "--model google/gemma-3-1b-it",
    ):
        assert flag in command
    assert engine["image"].startswith("vllm/vllm-openai:v")


@pytest.mark.timeout(60)
def test_kafka_init_partitions_follow_the_variable(tmp_path: Path) -> None:
    tool = primary()
    model = tool.config([COMPOSE_FILE], ["vllm"], tmp_path)
    assert environment(model["services"]["kafka-init"])["PARTITIONS"] == "8"
    model = tool.config([COMPOSE_FILE], ["vllm"], tmp_path, {"EVALSTREAM_PARTITIONS": "16"})
    assert environment(model["services"]["kafka-init"])["PARTITIONS"] == "16"


# ----------------------------------------------------------------------------- engines per GPU

ENGINE_COUNTS = (2, 3)
# The card's share that vLLM's default (0.9) leaves free, and what each process holds beyond its
# --gpu-memory-utilization share (about 2.7 GiB of an 80 GB card, BENCHMARKS §1 run 7).
CARD_BUDGET = 0.9
OVERHEAD_PER_ENGINE = 0.035


def _engines_override(count: int) -> Path:
    return ROOT / "deploy" / "compose" / f"engines-{count}-per-gpu.yml"


def _share(command: list[str]) -> float:
    return float(command[command.index("--gpu-memory-utilization") + 1])


def _engine_services(services: dict[str, Any]) -> list[str]:
    """vllm-0, vllm-0b, vllm-0c, ...: sorted, which is their start order."""
    return sorted(name for name in services if re.fullmatch(r"vllm-0[a-z]?", name))


def _engine_of(worker: str) -> str:
    return worker.removeprefix("worker-")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("count", ENGINE_COUNTS)
def test_engines_per_gpu_override_is_valid(
    compose_tool: ComposeTool, count: int, tmp_path: Path
) -> None:
    model = compose_tool.config([COMPOSE_FILE, _engines_override(count)], ["vllm"], tmp_path)
    assert len(_engine_services(model["services"])) == count


@pytest.mark.timeout(30)
@pytest.mark.parametrize("count", ENGINE_COUNTS)
def test_engines_per_gpu_shares_fit_the_card(count: int) -> None:
    # The files themselves, so that this holds without a compose implementation too.
    base = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    override = yaml.safe_load(_engines_override(count).read_text())["services"]
    engines = {"vllm-0": base["vllm-0"], **override}
    shares = [_share(engines[name]["command"]) for name in _engine_services(engines)]
    assert len(shares) == count
    for share in shares:
        assert share * count + OVERHEAD_PER_ENGINE * count <= CARD_BUDGET + 1e-9, shares
    assert _share(base["vllm-0"]["command"]) == CARD_BUDGET, "one engine keeps vLLM's default"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("count", ENGINE_COUNTS)
def test_engines_per_gpu_start_one_after_another(count: int, tmp_path: Path) -> None:
    services = primary().config([COMPOSE_FILE, _engines_override(count)], ["vllm"], tmp_path)[
        "services"
    ]
    engines = _engine_services(services)
    assert "depends_on" not in services[engines[0]]
    for before, after in itertools.pairwise(engines):
        assert services[after]["depends_on"] == {
            before: {"condition": "service_healthy", "required": True}
        }
        assert "healthcheck" in services[before]
    for name in engines:
        assert devices(services[name]) == [
            {"driver": "nvidia", "device_ids": ["0"], "capabilities": ["gpu"]}
        ]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("count", ENGINE_COUNTS)
def test_engines_per_gpu_extra_engines_are_the_base_engine(count: int, tmp_path: Path) -> None:
    services = primary().config([COMPOSE_FILE, _engines_override(count)], ["vllm"], tmp_path)[
        "services"
    ]
    first, *others = _engine_services(services)

    def essence(service: dict[str, Any]) -> dict[str, Any]:
        # What may differ: the published port, the start order, GPU 0's network alias.
        return {k: v for k, v in service.items() if k not in {"ports", "depends_on", "networks"}}

    for name in others:
        assert essence(services[name]) == essence(services[first]), name
        # The aliases prometheus.yml scrapes name GPU 0's first engine alone, not a DNS rotation.
        assert (services[name].get("networks") or {}).get("default") is None, name


@pytest.mark.timeout(120)
@pytest.mark.parametrize("count", ENGINE_COUNTS)
def test_engines_per_gpu_bind_one_worker_to_each_engine_in_one_group(
    count: int,
    tmp_path: Path,
    clean_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    services = primary().config([COMPOSE_FILE, _engines_override(count)], ["vllm"], tmp_path)[
        "services"
    ]
    engines = _engine_services(services)
    workers = [f"worker-{name}" for name in engines]
    assert sorted(n for n in services if n.startswith("worker-vllm-")) == workers

    ids, urls, groups, host_ports = set(), set(), set(), []
    for k, name in enumerate(workers):
        worker = services[name]
        assert set(worker["depends_on"]) == {"kafka-init", _engine_of(name)}
        assert worker["depends_on"][_engine_of(name)]["condition"] == "service_healthy"
        settings = effective_settings(environment(worker), clean_env, capsys)
        assert settings["engine"]["url"] == f"http://{_engine_of(name)}:8000"
        assert settings["gpu"] == "0"
        ids.add(settings["worker_id"])
        urls.add(settings["engine"]["url"])
        groups.add(settings["kafka"]["group_id"])
        assert [published(p) for p in worker["ports"]] == [("127.0.0.1", 9400 + k, 9400)]
        host_ports += [published(p)[1] for p in worker["ports"]]
        host_ports += [published(p)[1] for p in services[_engine_of(name)]["ports"]]
    assert len(ids) == len(urls) == count
    assert groups == {"evalstream"}
    assert len(host_ports) == len(set(host_ports)), "published ports collide"
    assert int(environment(services["kafka-init"])["PARTITIONS"]) % count == 0


@pytest.mark.timeout(60)
@pytest.mark.parametrize("count", ENGINE_COUNTS)
def test_engines_per_gpu_prometheus_targets_list_every_worker(count: int, tmp_path: Path) -> None:
    override = _engines_override(count)
    services = primary().config([COMPOSE_FILE, override], ["vllm"], tmp_path)["services"]
    targets = override.with_suffix(".targets")
    mounts = [
        v if isinstance(v, str) else f"{v['source']}:{v['target']}"
        for v in services["prometheus"]["volumes"]
    ]
    assert any(m.startswith(str(targets)) and ":/etc/prometheus/targets" in m for m in mounts)

    # GPU 0's worker and engine are prometheus.yml's static targets (their network aliases).
    first, *others = _engine_services(services)
    assert "worker" in services[f"worker-{first}"]["networks"]["default"]["aliases"]
    assert "vllm" in services[first]["networks"]["default"]["aliases"]
    workers = yaml.safe_load((targets / "evalstream-worker.yml").read_text())
    engines = yaml.safe_load((targets / "vllm.yml").read_text())
    assert workers == [{"targets": [f"worker-{name}:9400" for name in others]}]
    assert engines == [{"targets": [f"{name}:8000"], "labels": {"gpu": "0"}} for name in others]
