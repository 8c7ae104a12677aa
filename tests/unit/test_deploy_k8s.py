"""``deploy/k8s`` and its overlay ``deploy/k8s-engines-per-gpu``, rendered by ``kubectl kustomize``.

Where kubectl is missing, the base is read as its plain files and the overlay rendered by a
small stand-in for kustomize (its generator, strategic-merge and JSON patches), which a test
compares with kubectl's rendering where both exist. Both renderings pass every check below.

- Built-in kinds against the Kubernetes JSON schemas that PyPI ``kubernetes-validate`` ships,
  by kubeconform and by kubernetes-validate itself, for the oldest and newest release covered.
- KEDA and Prometheus Operator resources against the pydantic models generated from their
  CRDs (PyPI ``cloudcoil-models-keda``, ``cloudcoil-models-prometheus-operator``), strictly
  (no unknown or coerced field).
- The worker pod drains before it is killed, with every ``EVALSTREAM_*`` variable parsed by
  the worker's own settings; references between the resources resolve; autoscaling stays
  within the requests topic's partitions, counting each pod's workers.
- The overlay runs two engines in the one GPU container (the only one that requests the GPU),
  with shares that fit the card, and a worker per engine with its own id, metrics port and
  engine URL, in one group, every one scraped; ``engines.sh`` starts the engines one after the
  other and stops the container when either exits (run with a stand-in ``vllm``).

A test whose tool is missing skips and says which tool and how to install it.
"""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.deploy_tools import ROOT, effective_settings, run, tool

K8S_DIR = ROOT / "deploy" / "k8s"
ENGINES_DIR = ROOT / "deploy" / "k8s-engines-per-gpu"
K8S_VERSIONS = ("1.29.0", "1.37.0")  # oldest and newest release the checks cover
CRD_KINDS = ("ScaledObject", "TriggerAuthentication", "ServiceMonitor")
# Workers need this long after the drain to commit their offsets and close the consumer.
CLOSE_MARGIN_S = 5.0


# The strategic-merge keys of the lists the overlay's Deployment patch touches.
MERGE_KEYS = {
    "containers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
}


def _strategic_merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:  # a null deletes the field (a probe's httpGet replaced by exec)
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _strategic_merge(target[key], value)
        elif isinstance(value, list) and key in MERGE_KEYS and isinstance(target.get(key), list):
            merge_key = MERGE_KEYS[key]
            for item in value:
                same = [t for t in target[key] if t.get(merge_key) == item.get(merge_key)]
                if same:
                    _strategic_merge(same[0], item)
                else:
                    target[key].append(copy.deepcopy(item))
        else:
            target[key] = copy.deepcopy(value)


def _json_patch(target: dict[str, Any], operation: dict[str, Any]) -> None:
    *parents, last = [
        part.replace("~1", "/").replace("~0", "~") for part in operation["path"].split("/")[1:]
    ]
    node: Any = target
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    assert operation["op"] in ("add", "replace"), operation
    if isinstance(node, list) and last == "-":
        node.append(operation["value"])
    elif isinstance(node, list):
        node[int(last)] = operation["value"]
    else:
        node[last] = operation["value"]


def _kustomize_fallback(directory: Path) -> list[dict[str, Any]]:
    """What ``kubectl kustomize`` makes of these kustomizations, less names, labels and images."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        path = directory / name
        if path.is_dir():
            docs += _kustomize_fallback(path.resolve())
        else:
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    for generator in kustomization.get("configMapGenerator", []):
        data = {Path(f).name: (directory / f).read_text() for f in generator["files"]}
        metadata = {"name": generator["name"]}
        docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data})
    for patch in kustomization.get("patches", []):
        if "path" in patch:
            body = yaml.safe_load((directory / patch["path"]).read_text())
            _strategic_merge(_one(docs, body["kind"], body["metadata"]["name"]), body)
        else:
            target = _one(docs, patch["target"]["kind"], patch["target"]["name"])
            for operation in yaml.safe_load(patch["patch"]):
                _json_patch(target, operation)
    return docs


def _render(directory: Path) -> list[dict[str, Any]]:
    """The manifests as ``kubectl kustomize`` renders them (the stand-in without it)."""
    kubectl = tool("kubectl")
    if kubectl is None:
        return _kustomize_fallback(directory)
    result = run([kubectl, "kustomize", str(directory)])
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


@pytest.fixture(scope="module", params=[K8S_DIR, ENGINES_DIR], ids=["base", "engines-per-gpu"])
def k8s_docs(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    """Each kustomization's manifests: every check below holds for the base and the overlay."""
    directory: Path = request.param
    return _render(directory)


@pytest.fixture(scope="module")
def engines_docs() -> list[dict[str, Any]]:
    return _render(ENGINES_DIR)


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


def _workers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    """The evalstream worker containers of a pod (the engines run other images)."""
    return [c for c in pod["containers"] if c["image"].split(":")[0].endswith("evalstream")]


@pytest.mark.timeout(60)
def test_k8s_worker_pod_drains_before_it_is_killed(
    k8s_docs: list[dict[str, Any]],
    clean_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pod = _one(k8s_docs, "Deployment")["spec"]["template"]["spec"]
    config = _one(k8s_docs, "ConfigMap", "evalstream-config")["data"]
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
    config = _one(k8s_docs, "ConfigMap", "evalstream-config")
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
    annotations = scaled["metadata"]["annotations"]
    partitions = int(annotations["evalstream.dev/requests-topic-partitions"])
    # A pod of the engines-per-gpu overlay is several consumers of the group.
    per_pod = int(annotations.get("evalstream.dev/workers-per-pod", "1"))
    pod = _one(k8s_docs, "Deployment")["spec"]["template"]["spec"]
    assert len(_workers(pod)) == per_pod
    consumers = spec["maxReplicaCount"] * per_pod
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    assert consumers <= partitions
    assert partitions % consumers == 0
    assert spec["scaleTargetRef"]["name"] == _one(k8s_docs, "Deployment")["metadata"]["name"]
    trigger = spec["triggers"][0]
    config = _one(k8s_docs, "ConfigMap", "evalstream-config")["data"]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["consumerGroup"] == config["EVALSTREAM_KAFKA__GROUP_ID"]
    assert trigger["metadata"]["topic"] == config["EVALSTREAM_KAFKA__REQUESTS_TOPIC"]
    assert trigger["metadata"]["allowIdleConsumers"] == "false"
    assert int(trigger["metadata"]["lagThreshold"]) > 0
    budget = _one(k8s_docs, "PodDisruptionBudget")["spec"]
    assert budget["maxUnavailable"] == 1


# ----------------------------------------------------------------------------- engines per GPU

# The card's share that vLLM's default (0.9) leaves free, and what each process holds beyond its
# --gpu-memory-utilization share (about 2.7 GiB of an 80 GB card, BENCHMARKS §1 run 7).
CARD_BUDGET = 0.9
OVERHEAD_PER_ENGINE = 0.035
ENGINES_SCRIPT = ENGINES_DIR / "engines.sh"


def _pod(docs: list[dict[str, Any]]) -> dict[str, Any]:
    pod: dict[str, Any] = _one(docs, "Deployment")["spec"]["template"]["spec"]
    return pod


def _values(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def _engine_ports(docs: list[dict[str, Any]]) -> list[int]:
    return [int(p) for p in _values(_container(_pod(docs), "vllm"))["ENGINE_PORTS"].split()]


@pytest.mark.timeout(30)
def test_k8s_engines_per_gpu_one_container_requests_the_gpu(
    engines_docs: list[dict[str, Any]],
) -> None:
    pod = _pod(engines_docs)
    holders = [
        (c["name"], amounts["nvidia.com/gpu"])
        for c in pod["containers"] + pod.get("initContainers", [])
        for amounts in c.get("resources", {}).values()
        if "nvidia.com/gpu" in amounts
    ]
    assert holders == [("vllm", 1)]


@pytest.mark.timeout(30)
def test_k8s_engines_per_gpu_shares_fit_the_card(engines_docs: list[dict[str, Any]]) -> None:
    vllm = _container(_pod(engines_docs), "vllm")
    ports = _engine_ports(engines_docs)
    share = float(_values(vllm)["ENGINE_MEM"])
    assert len(ports) == 2
    assert share * len(ports) + OVERHEAD_PER_ENGINE * len(ports) <= CARD_BUDGET + 1e-9
    # engines.sh gives each engine its port and share: the shared flags must not.
    assert not any(a.startswith(("--port", "--gpu-memory-utilization")) for a in vllm["args"])
    assert {p["containerPort"] for p in vllm["ports"]} == set(ports)
    assert vllm["command"] == ["/bin/bash", "/opt/evalstream/engines.sh"]


@pytest.mark.timeout(30)
def test_k8s_engines_per_gpu_mounts_the_script(engines_docs: list[dict[str, Any]]) -> None:
    pod = _pod(engines_docs)
    mount = next(
        m for m in _container(pod, "vllm")["volumeMounts"] if m["mountPath"] == "/opt/evalstream"
    )
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    config = _one(engines_docs, "ConfigMap", volume["configMap"]["name"])
    assert config["data"]["engines.sh"] == ENGINES_SCRIPT.read_text()


@pytest.mark.timeout(30)
def test_k8s_engines_per_gpu_probes_ask_every_engine(engines_docs: list[dict[str, Any]]) -> None:
    vllm = _container(_pod(engines_docs), "vllm")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert "httpGet" not in vllm[probe], probe
        command = vllm[probe]["exec"]["command"]
        assert "ENGINE_PORTS" in command[-1], probe
        assert "/health" in command[-1], probe
        # Each engine's request may take its whole timeout (4 s).
        assert vllm[probe]["timeoutSeconds"] >= 4 * len(_engine_ports(engines_docs)), probe


@pytest.mark.timeout(60)
def test_k8s_engines_per_gpu_bind_one_worker_to_each_engine_in_one_group(
    engines_docs: list[dict[str, Any]],
    clean_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pod = _pod(engines_docs)
    config = _one(engines_docs, "ConfigMap", "evalstream-config")["data"]
    workers = _workers(pod)
    assert len(workers) == len(_engine_ports(engines_docs))
    urls, ids, metrics_ports, groups = [], set(), set(), set()
    for worker in workers:
        env = dict(config)
        for item in worker["env"]:
            # The kubelet's $(VAR) expansion, with the pod's name for the fieldRef.
            value = item.get("value", f"from-{item['name'].lower()}")
            env[item["name"]] = value.replace("$(POD_NAME)", "evalstream-worker-7d9f-x2")
        settings = effective_settings(env, clean_env, capsys)
        urls.append(settings["engine"]["url"])
        ids.add(env.get("EVALSTREAM_WORKER_ID"))
        groups.add(settings["kafka"]["group_id"])
        port = settings["metrics"]["port"]
        metrics_ports.add(port)
        named = {p["name"]: p["containerPort"] for p in worker["ports"]}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert named[worker[probe]["httpGet"]["port"]] == port, (worker["name"], probe)
    assert sorted(urls) == [f"http://127.0.0.1:{p}" for p in _engine_ports(engines_docs)]
    assert len(ids) == len(workers)
    assert len(metrics_ports) == len(workers)
    assert groups == {config["EVALSTREAM_KAFKA__GROUP_ID"]}
    # The engines stay up until every worker has drained.
    pre_stop = " ".join(_container(pod, "vllm")["lifecycle"]["preStop"]["exec"]["command"])
    for port in metrics_ports:
        assert f"/dev/tcp/127.0.0.1/{port}" in pre_stop
    images = {c["image"] for c in workers}
    assert len(images) == 1, f"every worker runs one image: {images}"


@pytest.mark.timeout(30)
def test_k8s_engines_per_gpu_scrapes_every_worker_and_engine(
    engines_docs: list[dict[str, Any]],
) -> None:
    pod = _pod(engines_docs)
    container_ports = {
        p["containerPort"]: p["name"] for c in pod["containers"] for p in c.get("ports", [])
    }
    metrics_ports = {
        int(next(i["value"] for i in w["env"] if i["name"] == "EVALSTREAM_METRICS__PORT"))
        if any(i["name"] == "EVALSTREAM_METRICS__PORT" for i in w["env"])
        else 9400
        for w in _workers(pod)
    }
    wanted = {container_ports[p] for p in metrics_ports | set(_engine_ports(engines_docs))}
    services = [d for d in engines_docs if d["kind"] == "Service"]
    service_ports = {p["name"]: p["targetPort"] for s in services for p in s["spec"]["ports"]}
    endpoints = {e["port"] for e in _one(engines_docs, "ServiceMonitor")["spec"]["endpoints"]}
    assert wanted <= endpoints
    assert all(service_ports[e] in container_ports.values() for e in endpoints)


@pytest.mark.timeout(60)
def test_k8s_fallback_rendering_matches_kubectl() -> None:
    if tool("kubectl") is None:
        pytest.skip("kubectl not installed: nothing to compare the stand-in with")

    def normal(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: normal(v) for k, v in value.items() if k != "image"}
        if isinstance(value, list):
            return sorted((normal(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
        return value

    for directory in (K8S_DIR, ENGINES_DIR):
        ours, kubectl = _kustomize_fallback(directory), _render(directory)
        assert normal(_pod(ours)["containers"]) == normal(_pod(kubectl)["containers"])
        for kind in ("Service", "ServiceMonitor", "ScaledObject"):

            def specs(docs: list[dict[str, Any]], kind: str = kind) -> dict[str, Any]:
                return {d["metadata"]["name"]: normal(d["spec"]) for d in docs if d["kind"] == kind}

            assert specs(ours) == specs(kubectl), (directory.name, kind)


# A stand-in `vllm serve`: logs its arguments and pid, answers /health after a short warm-up
# (the time an engine would profile its memory), exits on SIGTERM.
STAND_IN_VLLM = """\
import http.server, json, os, sys, time
args = sys.argv[1:]
port = int(args[args.index("--port") + 1])
with open(os.environ["STAND_IN_LOG"], "a") as log:
    log.write(json.dumps({"event": "start", "port": port, "pid": os.getpid(),
                          "args": args, "t": time.monotonic()}) + "\\n")
time.sleep(1.0)

class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
    def log_message(self, *_):
        pass

with open(os.environ["STAND_IN_LOG"], "a") as log:
    log.write(json.dumps({"event": "healthy", "port": port, "t": time.monotonic()}) + "\\n")
http.server.HTTPServer(("127.0.0.1", port), Health).serve_forever()
"""


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _events(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
            return True
    except OSError:
        return False


def _start_engines(tmp_path: Path) -> tuple[subprocess.Popen[str], list[int], Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_in = bin_dir / "vllm"
    stand_in.write_text(f"#!{sys.executable}\n{STAND_IN_VLLM}")
    stand_in.chmod(0o755)
    ports, log = _free_ports(2), tmp_path / "engines.jsonl"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "ENGINE_PORTS": " ".join(map(str, ports)),
        "ENGINE_MEM": "0.415",
        "STAND_IN_LOG": str(log),
    }
    script = subprocess.Popen(
        ["bash", str(ENGINES_SCRIPT), "--model=m", "--enable-prefix-caching"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    # Up once the script itself has seen every engine healthy (the test's timeout bounds it).
    assert script.stdout is not None
    seen: list[str] = []
    while f"engine on port {ports[-1]} healthy" not in "".join(seen):
        line = script.stdout.readline()
        assert line, "".join(seen)
        seen.append(line)
    return script, ports, log


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.timeout(60)
def test_engines_script_starts_the_engines_one_after_the_other(tmp_path: Path) -> None:
    script, ports, log = _start_engines(tmp_path)
    try:
        events = _events(log)
        starts = [e for e in events if e["event"] == "start"]
        assert [e["port"] for e in starts] == ports
        first_healthy = next(e for e in events if e["event"] == "healthy" and e["port"] == ports[0])
        assert starts[1]["t"] > first_healthy["t"], "engine B started before A was healthy"
        for start in starts:
            assert start["args"] == [
                "serve",
                "--model=m",
                "--enable-prefix-caching",
                "--port",
                str(start["port"]),
                "--gpu-memory-utilization",
                "0.415",
            ]
    finally:
        script.send_signal(signal.SIGTERM)
        output, _ = script.communicate(timeout=15)
    assert script.returncode == 143, output
    assert all(_gone(e["pid"]) for e in _events(log) if e["event"] == "start")


@pytest.mark.timeout(60)
def test_engines_script_exits_when_either_engine_dies(tmp_path: Path) -> None:
    script, ports, log = _start_engines(tmp_path)
    pids = [e["pid"] for e in _events(log) if e["event"] == "start"]
    os.kill(pids[1], signal.SIGKILL)
    # The container dies with it (the kubelet then restarts both, in order), its survivor too.
    output, _ = script.communicate(timeout=15)
    assert script.returncode == 128 + signal.SIGKILL, output
    assert not _answers(ports[0])
    deadline = time.monotonic() + 10
    while not _gone(pids[0]):
        assert time.monotonic() < deadline, "the other engine outlived the container's script"
        time.sleep(0.1)
