"""Helpers of the deployment-artefact tests (``test_deploy_*.py``): the tools they run.

``run`` runs a command in the repository root, ``tool`` finds one. ``ComposeTool`` is one
installed compose implementation (``COMPOSE_TOOLS`` lists them, ``primary`` is the newest);
``devices``, ``published`` and ``environment`` read a service of its rendering.
``effective_settings`` is the worker's own view (``evalstream-consumer --check-config``) of an
environment.
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
from consumer.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"


def run(
    argv: list[str], timeout: float = 60, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs a tool in the repository root, without this shell's EVALSTREAM_/COMPOSE_ settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVALSTREAM_", "COMPOSE_"))}
    env.update(extra_env or {})
    return subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def tool(name: str) -> str | None:
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
        result = run([*argv, "config"], extra_env=env)
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
    docker = tool("docker")
    plugin = plugin_dir / "docker-compose"
    candidates: list[tuple[str, ...]] = []
    if docker:
        candidates.append((docker, "compose"))
    if plugin.exists():  # the plugin binary also runs on its own, without the docker CLI
        candidates.append((str(plugin),))
    standalone = tool("docker-compose")
    if standalone:
        candidates.append((standalone,))
    for argv in candidates:
        try:
            result = run([*argv, "version", "--short"], timeout=30)
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


def primary() -> ComposeTool:
    """The newest implementation present: its output drives the structural checks."""
    if not COMPOSE_TOOLS:
        pytest.skip(NO_COMPOSE)
    return sorted(COMPOSE_TOOLS, key=lambda t: t.legacy)[0]


def devices(service: dict[str, Any]) -> list[dict[str, Any]]:
    """The devices a service reserves (its GPUs)."""
    reserved: list[dict[str, Any]] = (
        service.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])
    )
    return reserved


def published(port: Any) -> tuple[str, int, int]:
    """(host ip, host port, container port) of a short or long port entry.

    Some compose implementations print the short form with its protocol
    (``127.0.0.1:9400:9400/tcp``); the protocol is dropped.
    """
    if isinstance(port, dict):
        return str(port.get("host_ip", "")), int(port["published"]), int(port["target"])
    *address, host, container = str(port).split(":")
    return ":".join(address), int(host), int(container.split("/")[0])


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment, from either of its forms (a mapping or KEY=value items)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


# ----------------------------------------------------------------------------- settings


def effective_settings(
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
