"""``python -m evalstream_local.compose``: a docker compose override for N GPUs on one box.

``docker-compose.yml`` serves GPU 0: engine ``vllm-0`` (or ``ollama-0``) and its worker
``worker-vllm-0`` (``worker-ollama-0``). The override adds engines and workers 1..N-1, each
a copy of GPU 0's service with the fields bound to the GPU changed, so the base file stays
the one place where an engine or a worker is described:

- engine *i*: ``device_ids: ["i"]``, host port base + *i*;
- worker *i*: ``EVALSTREAM_GPU=i`` (its ``{gpu}`` engine URL then names engine *i*),
  ``EVALSTREAM_WORKER_ID``, ``depends_on`` engine *i*, metrics host port 9400 + *i*;
- network aliases (``worker``, ``vllm``) stay with GPU 0, whose names Prometheus scrapes;
- ``kafka-init`` gets a default partition count that is a multiple of N.

With ``--out DIR`` it also writes Prometheus file_sd targets for the added workers and
engines (with the engine's ``gpu`` label) and mounts them at ``/etc/prometheus/targets``.
Inside the compose network every worker listens on 9400 (each container has its own
address); only the ports published on 127.0.0.1 differ.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# Partitions per GPU at least: a stopped worker's share then spreads over several others.
MIN_PARTITIONS = 8
METRICS_PORT = 9400
TARGETS_MOUNT = "/etc/prometheus/targets"


@dataclass(frozen=True)
class EngineKind:
    """How one engine profile names its services in ``docker-compose.yml``."""

    profile: str
    port: int
    scraped: bool  # serves Prometheus metrics of its own (vLLM does, Ollama does not)

    def engine(self, gpu: int) -> str:
        return f"{self.profile}-{gpu}"

    def worker(self, gpu: int) -> str:
        return f"worker-{self.profile}-{gpu}"


ENGINES = {
    "vllm": EngineKind("vllm", 8000, scraped=True),
    "ollama": EngineKind("ollama", 11434, scraped=False),
}


def default_partitions(gpus: int) -> int:
    """The smallest multiple of ``gpus`` that is at least ``MIN_PARTITIONS`` and ``gpus``."""
    return gpus * max(1, -(-MIN_PARTITIONS // gpus))


def _shift_ports(ports: list[Any], offset: int) -> list[Any]:
    """Moves each published host port by ``offset`` (``[IP:]HOST:CONTAINER`` strings)."""
    shifted: list[Any] = []
    for port in ports:
        if not isinstance(port, str) or port.count(":") < 1:
            raise ValueError(f"expected a '[ip:]host:container' port string, got {port!r}")
        *address, host, container = port.split(":")
        shifted.append(":".join([*address, str(int(host) + offset), container]))
    return shifted


def _without_aliases(service: dict[str, Any]) -> None:
    """Drops network aliases: they name GPU 0's services only."""
    networks = service.pop("networks", None)
    if not isinstance(networks, dict):
        if networks:
            service["networks"] = networks  # the list form carries no aliases
        return
    kept: dict[str, Any] = {}
    for name, config in networks.items():
        rest = {key: value for key, value in (config or {}).items() if key != "aliases"}
        kept[name] = rest or None
    if kept != {"default": None}:
        service["networks"] = kept


class ComposeOverride:
    """Builds the override that adds GPUs 1..N-1 to the base compose file."""

    def __init__(self, base: dict[str, Any], kind: EngineKind, gpus: int) -> None:
        if gpus < 1:
            raise ValueError(f"--gpus must be at least 1, got {gpus}")
        services = base.get("services") or {}
        for name in (kind.engine(0), kind.worker(0)):
            if name not in services:
                raise ValueError(f"the base compose file has no service {name!r}")
        self._engine0: dict[str, Any] = services[kind.engine(0)]
        self._worker0: dict[str, Any] = services[kind.worker(0)]
        self.kind = kind
        self.gpus = gpus

    def engine(self, gpu: int) -> dict[str, Any]:
        """Engine ``gpu``: GPU 0's engine pinned to device ``gpu``."""
        service = copy.deepcopy(self._engine0)
        service["ports"] = _shift_ports(service.get("ports", []), gpu)
        devices = service["deploy"]["resources"]["reservations"]["devices"]
        for device in devices:
            device["device_ids"] = [str(gpu)]
        _without_aliases(service)
        return service

    def worker(self, gpu: int) -> dict[str, Any]:
        """Worker ``gpu``: GPU 0's worker bound to GPU ``gpu`` and engine ``gpu``."""
        service = copy.deepcopy(self._worker0)
        env = service.get("environment")
        if not isinstance(env, dict):
            raise ValueError(f"{self.kind.worker(0)}: environment must be a mapping")
        env["EVALSTREAM_GPU"] = str(gpu)
        env["EVALSTREAM_WORKER_ID"] = self.kind.worker(gpu)
        url = str(env.get("EVALSTREAM_ENGINE__URL", ""))
        if "{gpu}" not in url:
            env["EVALSTREAM_ENGINE__URL"] = url.replace(
                f"//{self.kind.engine(0)}:", f"//{self.kind.engine(gpu)}:"
            )
        depends = service.get("depends_on", {})
        if self.kind.engine(0) in depends:
            depends[self.kind.engine(gpu)] = depends.pop(self.kind.engine(0))
        service["ports"] = _shift_ports(service.get("ports", []), gpu)
        _without_aliases(service)
        return service

    def document(self, targets_source: str | None = None) -> dict[str, Any]:
        """The override as a compose mapping.

        Args:
            targets_source: bind-mount source of the Prometheus targets directory
                (relative to the project directory), or None to leave Prometheus alone.
        """
        partitions = default_partitions(self.gpus)
        services: dict[str, Any] = {
            "kafka-init": {
                "environment": {"PARTITIONS": f"${{EVALSTREAM_PARTITIONS:-{partitions}}}"}
            }
        }
        for gpu in range(1, self.gpus):
            services[self.kind.engine(gpu)] = self.engine(gpu)
            services[self.kind.worker(gpu)] = self.worker(gpu)
        if targets_source is not None:
            services["prometheus"] = {"volumes": [f"{targets_source}:{TARGETS_MOUNT}:ro"]}
        return {"services": services}

    def targets(self) -> dict[str, list[dict[str, Any]]]:
        """Prometheus file_sd documents, by file name, for GPUs 1..N-1."""
        extra = range(1, self.gpus)
        files: dict[str, list[dict[str, Any]]] = {
            "evalstream-worker.yml": [
                {"targets": [f"{self.kind.worker(gpu)}:{METRICS_PORT}" for gpu in extra]}
            ]
            if self.gpus > 1
            else []
        }
        if self.kind.scraped:
            files[f"{self.kind.profile}.yml"] = [
                {
                    "targets": [f"{self.kind.engine(gpu)}:{self.kind.port}"],
                    "labels": {"gpu": str(gpu)},
                }
                for gpu in extra
            ]
        return files


def _added(gpus: int) -> str:
    if gpus == 1:
        return "no GPU"
    return "GPU 1" if gpus == 2 else f"GPUs 1-{gpus - 1}"


def _header(kind: EngineKind, gpus: int, override: str) -> str:
    return (
        f"# Generated by `python -m evalstream_local.compose --gpus {gpus} --engine "
        f"{kind.profile}`; do not edit.\n"
        f"# Adds {_added(gpus)} to docker-compose.yml (which serves GPU 0): one "
        f"{kind.profile} engine per GPU,\n# one worker per engine. Partitions default to "
        f"{default_partitions(gpus)} (a multiple of {gpus}).\n"
        f"#   docker compose -f docker-compose.yml -f {override} --profile {kind.profile} "
        f"up -d\n"
    )


def dump(document: Any) -> str:
    """YAML in the layout of the base file (keys in insertion order, block style)."""
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False, width=100)


def write(override: ComposeOverride, out_dir: Path, project_dir: Path) -> Path:
    """Writes ``gpus-N-ENGINE.yml`` and its ``.targets`` directory; returns the file."""
    stem = f"gpus-{override.gpus}-{override.kind.profile}"
    path = out_dir / f"{stem}.yml"
    targets_dir = out_dir / f"{stem}.targets"
    targets_dir.mkdir(parents=True, exist_ok=True)
    for name, document in override.targets().items():
        (targets_dir / name).write_text(
            "# Generated with " + path.name + "; Prometheus file_sd targets.\n" + dump(document),
            encoding="utf-8",
        )
    source = Path(os.path.relpath(targets_dir.resolve(), project_dir.resolve())).as_posix()
    relative = Path(os.path.relpath(path.resolve(), project_dir.resolve())).as_posix()
    text = _header(override.kind, override.gpus, relative) + dump(override.document(f"./{source}"))
    path.write_text(text, encoding="utf-8")
    return path


def load_base(path: Path) -> dict[str, Any]:
    """The base compose file with anchors and merge keys resolved."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise ValueError(f"{path} is not a compose mapping")
    return document


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m evalstream_local.compose",
        description="Print (or write) a docker compose override with one engine and one "
        "worker per GPU, added to docker-compose.yml's GPU 0.",
    )
    p.add_argument("--gpus", type=int, required=True, help="GPUs on this machine")
    p.add_argument("--engine", choices=sorted(ENGINES), default="vllm")
    p.add_argument(
        "--base",
        type=Path,
        default=Path("docker-compose.yml"),
        help="the base compose file (default: ./docker-compose.yml)",
    )
    p.add_argument(
        "--out",
        type=Path,
        help="write gpus-N-ENGINE.yml and its Prometheus targets here "
        "instead of printing the override",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Console entry point."""
    args = _parser().parse_args(argv)
    try:
        override = ComposeOverride(load_base(args.base), ENGINES[args.engine], args.gpus)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"compose: {exc}", file=sys.stderr)
        return 2
    if args.out is None:
        sys.stdout.write(_header(override.kind, override.gpus, "-") + dump(override.document()))
        return 0
    path = write(override, args.out, args.base.parent)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
