"""``deploy/k8s``, rendered by ``kubectl kustomize`` (the plain files where it is missing).

- Built-in kinds against the Kubernetes JSON schemas that PyPI ``kubernetes-validate`` ships,
  by kubeconform and by kubernetes-validate itself, for the oldest and newest release covered.
- KEDA and Prometheus Operator resources against the pydantic models generated from their
  CRDs (PyPI ``cloudcoil-models-keda``, ``cloudcoil-models-prometheus-operator``), strictly
  (no unknown or coerced field).
- The worker pod drains before it is killed, with every ``EVALSTREAM_*`` variable parsed by
  the worker's own settings; references between the resources resolve; autoscaling stays
  within the requests topic's partitions.

A test whose tool is missing skips and says which tool and how to install it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.deploy_tools import ROOT, effective_settings, run, tool

K8S_DIR = ROOT / "deploy" / "k8s"
K8S_VERSIONS = ("1.29.0", "1.37.0")  # oldest and newest release the checks cover
CRD_KINDS = ("ScaledObject", "TriggerAuthentication", "ServiceMonitor")
# Workers need this long after the drain to commit their offsets and close the consumer.
CLOSE_MARGIN_S = 5.0


def _kustomization_resources() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((K8S_DIR / name).read_text()) if d]
    return docs


@pytest.fixture(scope="module")
def k8s_docs() -> list[dict[str, Any]]:
    """The manifests as ``kubectl kustomize`` renders them (the plain files without it)."""
    kubectl = tool("kubectl")
    if kubectl is None:
        return _kustomization_resources()
    result = run([kubectl, "kustomize", str(K8S_DIR)])
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
    kubeconform = tool("kubeconform")
    if kubeconform is None:
        pytest.skip(
            "kubeconform not installed "
            "(go install github.com/yannh/kubeconform/cmd/kubeconform@v0.8.0)"
        )
    schemas = _standalone_schemas(version, _builtin(k8s_docs), tmp_path / "schemas")
    result = run(
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
    settings = effective_settings(env, clean_env, capsys)

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
