"""``docker-compose.yml``, checked by the compose implementations installed.

``config`` of Docker Compose v2+ (``docker compose``, see deploy/compose/install-compose.sh)
and of the old Python docker-compose 1.x where present (Debian's ``docker-compose``) must
accept every profile. The newest one's rendering must wire each profile's worker to its
engine (GPU reservation, health checks, start order) and run vLLM with the measured flags;
every ``EVALSTREAM_*`` variable a worker gets is parsed by the worker's own settings. The N-GPU
overrides of ``evalstream_local.compose``: test_deploy_gpu_overrides.py.

A test whose tool is missing skips and says which tool and how to install it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.deploy_tools import (
    COMPOSE_FILE,
    COMPOSE_TOOLS,
    NO_COMPOSE,
    ComposeTool,
    devices,
    effective_settings,
    environment,
    primary,
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
