"""The wheel: what ships in it, and ``evalstream-local`` working from it, away from the checkout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

REPO_ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 60.0

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip wheel .`` of the checkout (hatchling from the environment: no index needed)."""
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    command += ["--quiet", "--wheel-dir", str(out), str(REPO_ROOT)]
    subprocess.run(command, check=True, capture_output=True, timeout=180)
    (built,) = out.glob("evalstream-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel unpacked into a directory of its own, as pip would lay it out (pure Python)."""
    target = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    return target


def test_the_wheel_ships_the_service_the_tools_and_the_dev_tooling_apart(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    packages = {name.split("/")[0] for name in names if not name.startswith("evalstream-0")}
    assert packages == {"consumer", "producer", "evalstream_local"}
    assert not [name for name in names if name.startswith("consumer/local/")]
    assert "evalstream_local/broker/pom.xml" in names
    assert "evalstream_local/broker/log4j2.properties" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "evalstream-local = evalstream_local.__main__:main" in scripts


def test_evalstream_local_kafka_runs_from_the_installed_wheel(
    installed: Path, tmp_path: Path
) -> None:
    # The unpacked wheel first on the path, and a working directory outside the checkout: the
    # package and its pom come from the wheel, not from the repository.
    env = {**os.environ, "PYTHONPATH": str(installed)}
    where = subprocess.run(
        [sys.executable, "-c", "import evalstream_local.broker.jars as j; print(j.POM)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(where.stdout.strip()) == installed / "evalstream_local" / "broker" / "pom.xml"

    command = [sys.executable, "-m", "evalstream_local", "kafka", "--partitions", "2"]
    command += ["--data-dir", str(tmp_path / "data")]
    with subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline().strip()
            assert first.startswith("bootstrap=127.0.0.1:"), first
            admin = AdminClient({"bootstrap.servers": first.removeprefix("bootstrap=")})
            topics = admin.list_topics(timeout=WAIT_S).topics
            assert len(topics["evalstream.requests"].partitions) == 2
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(WAIT_S) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
