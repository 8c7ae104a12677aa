"""The local broker's jars: resolved once by Maven from ``pom.xml`` beside this module.

They are kept in a cache directory between runs; a marker holding the pom's digest says the
directory is complete, and a lock keeps two processes from downloading at the same time.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from consumer.errors import EvalstreamError
from evalstream_local.cache import MARKER, locked

KAFKA_VERSION = "4.1.1"
# Package data beside this module, in a checkout and in an installed wheel alike, so
# `evalstream-local kafka` works wherever the package is installed from.
_HERE = Path(__file__).resolve().parent
POM = _HERE / "pom.xml"
LOG_CONFIG = _HERE / "log4j2.properties"


class LocalKafkaError(EvalstreamError):
    """The local broker could not be fetched, formatted or started."""

    reason = "local_kafka"


def default_cache_dir() -> Path:
    """Returns where the broker's jars are kept between runs."""
    return Path.home() / ".cache" / "evalstream" / f"kafka-{KAFKA_VERSION}"


def ensure_jars(cache_dir: Path, pom: Path = POM, mvn: str = "mvn") -> Path:
    """Puts the broker's jars in ``cache_dir/libs`` once, and returns that directory.

    A marker file holding the pom's digest says the directory is complete; a lock file keeps
    two processes from downloading at the same time.

    Raises:
        LocalKafkaError: Maven is missing or failed.
    """
    libs = cache_dir / "libs"
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()
    if _jars_ready(libs, digest):
        return libs
    with locked(cache_dir):
        # Another process may have completed the download while this one waited for the lock.
        if _jars_ready(libs, digest):
            return libs
        staging = cache_dir / "libs.partial"
        shutil.rmtree(staging, ignore_errors=True)
        command = [mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(pom)]
        command += ["dependency:copy-dependencies", f"-DoutputDirectory={staging}"]
        try:
            result = subprocess.run(command, capture_output=True, text=True, check=False)
        except FileNotFoundError as exc:
            raise LocalKafkaError(f"Maven ({mvn}) is needed to fetch the Kafka jars") from exc
        if result.returncode != 0:
            output = (result.stdout + result.stderr)[-4000:]
            raise LocalKafkaError(f"maven failed with exit code {result.returncode}:\n{output}")
        # The marker goes in before the rename, so a complete libs/ is the only kind others see.
        (staging / MARKER).write_text(digest)
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
    return libs


def _jars_ready(libs: Path, digest: str) -> bool:
    marker = libs / MARKER
    return marker.is_file() and marker.read_text().strip() == digest
