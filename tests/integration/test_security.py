"""Security: the worker over TLS and SASL, secrets that never leak, a metrics port kept local.

A second broker runs for this module with one listener per security protocol: PLAINTEXT (the
readiness probe and the test's own clients), SASL_PLAINTEXT and SASL_SSL (PLAIN and
SCRAM-SHA-512) and SSL. Its certificate is signed by a throwaway CA made here with ``keytool``,
which ships with the Java the broker needs anyway.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from confluent_kafka import KafkaException

# Documented in confluent_kafka.admin, which imports them without re-exporting them.
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    NewTopic,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from consumer.settings import MetricsSettings, Settings
from evalstream_local.broker.kafka import LocalKafka
from tests.integration.pipeline import (
    Pipeline,
    Topics,
    committed,
    end_offsets,
    free_port,
    produce,
    read_topic,
    request_json,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

HOST = "127.0.0.1"
PROTOCOLS = ("PLAINTEXT", "SASL_PLAINTEXT", "SSL", "SASL_SSL")
PLAIN_USER = "alice"
SCRAM_USER = "bob"
REQUESTS = 200


def keytool() -> str:
    """The keytool of the Java on PATH."""
    found = shutil.which("keytool")
    java = shutil.which("java")
    if found is None and java is not None:
        candidate = Path(java).resolve().parent / "keytool"
        found = str(candidate) if candidate.exists() else None
    if found is None:
        pytest.fail("keytool (part of the Java the local broker needs) is not installed")
    return found


@dataclass(frozen=True)
class Tls:
    """A throwaway CA and a broker key store it signed (SAN IP:127.0.0.1)."""

    ca_pem: Path
    keystore: Path
    password: str


def make_tls(directory: Path) -> Tls:
    """CA, broker key pair, CA-signed broker certificate, all with keytool."""
    directory.mkdir(parents=True, exist_ok=True)
    tool, password = keytool(), secrets.token_hex(12)
    ca, broker = directory / "ca.p12", directory / "broker.p12"
    store = ["-storetype", "PKCS12", "-storepass", password, "-keypass", password]
    key = ["-keyalg", "RSA", "-keysize", "2048", "-validity", "2"]

    def run(*args: str, stdin: bytes | None = None) -> bytes:
        done = subprocess.run([tool, *args], input=stdin, capture_output=True, check=False)
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        return done.stdout

    run("-genkeypair", "-alias", "ca", "-dname", "CN=evalstream test CA", "-ext", "bc:c",
        "-keystore", str(ca), *store, *key)  # fmt: skip
    run("-genkeypair", "-alias", "broker", "-dname", f"CN={HOST}", "-keystore", str(broker),
        *store, *key)  # fmt: skip
    request = run("-certreq", "-alias", "broker", "-keystore", str(broker), *store)
    signed = run("-gencert", "-alias", "ca", "-keystore", str(ca), *store, "-rfc",
                 "-ext", f"SAN=IP:{HOST}", "-validity", "2", stdin=request)  # fmt: skip
    ca_pem = directory / "ca.pem"
    ca_pem.write_bytes(run("-exportcert", "-alias", "ca", "-keystore", str(ca), *store, "-rfc"))
    (directory / "broker.pem").write_bytes(signed)
    run("-importcert", "-noprompt", "-alias", "ca", "-file", str(ca_pem),
        "-keystore", str(broker), *store)  # fmt: skip
    run("-importcert", "-alias", "broker", "-file", str(directory / "broker.pem"),
        "-keystore", str(broker), *store)  # fmt: skip
    return Tls(ca_pem, broker, password)


@dataclass
class SecureBroker:
    """The module's broker: one port per security protocol, and its users."""

    kafka: LocalKafka
    ports: dict[str, int]
    tls: Tls
    plain_password: str
    scram_password: str

    @property
    def plaintext(self) -> str:
        """The unauthenticated listener, for the test's own clients."""
        return f"{HOST}:{self.ports['PLAINTEXT']}"

    def address(self, protocol: str) -> str:
        """The bootstrap address of the listener speaking ``protocol``."""
        return f"{HOST}:{self.ports[protocol]}"

    def worker_env(self, protocol: str, mechanism: str | None) -> dict[str, str]:
        """The worker's security settings for ``protocol`` and ``mechanism``."""
        env = {"EVALSTREAM_KAFKA__SECURITY_PROTOCOL": protocol}
        if "SSL" in protocol:
            env["EVALSTREAM_KAFKA__SSL_CA_LOCATION"] = str(self.tls.ca_pem)
        if mechanism is not None:
            plain = mechanism == "PLAIN"
            env["EVALSTREAM_KAFKA__SASL_MECHANISM"] = mechanism
            env["EVALSTREAM_KAFKA__SASL_USERNAME"] = PLAIN_USER if plain else SCRAM_USER
            env["EVALSTREAM_KAFKA__SASL_PASSWORD"] = (
                self.plain_password if plain else self.scram_password
            )
        return env


def broker_config(
    ports: dict[str, int], controller: int, tls: Tls, plain_password: str
) -> dict[str, str]:
    """Listeners for every protocol; PLAIN users in JAAS, SCRAM users added at runtime."""
    listeners = [f"{name}://{HOST}:{port}" for name, port in ports.items()]
    config = {
        "listeners": ",".join([*listeners, f"CONTROLLER://{HOST}:{controller}"]),
        "advertised.listeners": ",".join(listeners),
        "controller.quorum.voters": f"1@{HOST}:{controller}",
        "listener.security.protocol.map": ",".join(
            f"{name}:{name}" for name in (*PROTOCOLS, "CONTROLLER")
        ).replace("CONTROLLER:CONTROLLER", "CONTROLLER:PLAINTEXT"),
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-512",
        "ssl.keystore.type": "PKCS12",
        "ssl.keystore.location": str(tls.keystore),
        "ssl.keystore.password": tls.password,
        "ssl.key.password": tls.password,
    }
    for listener in ("sasl_plaintext", "sasl_ssl"):
        prefix = f"listener.name.{listener}"
        config[f"{prefix}.plain.sasl.jaas.config"] = (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'user_{PLAIN_USER}="{plain_password}";'
        )
        config[f"{prefix}.scram-sha-512.sasl.jaas.config"] = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        )
    return config


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    """A second local broker with TLS and SASL listeners, for this module."""
    work = tmp_path_factory.mktemp("secure-kafka")
    tls = make_tls(work / "tls")
    ports = {protocol: free_port() for protocol in PROTOCOLS}
    plain_password, scram_password = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    config = broker_config(ports, free_port(), tls, plain_password)
    # The readiness probe speaks PLAINTEXT to `port`, which stays among the listeners.
    with LocalKafka(work / "kafka", ports["PLAINTEXT"], broker_config=config) as kafka:
        admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
        scram = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192)
        upsert = UserScramCredentialUpsertion(SCRAM_USER, scram, scram_password.encode())
        for future in admin.alter_user_scram_credentials([upsert]).values():
            future.result(timeout=30)
        yield SecureBroker(kafka, ports, tls, plain_password, scram_password)


def fresh_topics(broker: SecureBroker, name: str) -> Topics:
    """Requests (2 partitions), results and dead-letter topics, and a group, all new."""
    suffix = f"{name}-{secrets.token_hex(4)}"
    topics = Topics(f"requests-{suffix}", f"results-{suffix}", f"dlq-{suffix}", f"g-{suffix}")
    admin = AdminClient({"bootstrap.servers": broker.plaintext})
    new = [NewTopic(t, 2, replication_factor=1) for t in (topics.requests, topics.results)]
    new.append(NewTopic(topics.dlq, 1, replication_factor=1))
    for future in admin.create_topics(new, request_timeout=30).values():
        future.result(timeout=30)
    return topics


def flow(
    broker: SecureBroker,
    engine_url: str,
    tmp_path: Path,
    protocol: str,
    env: dict[str, str],
    *extra: str,
) -> Pipeline:
    """Runs a worker over ``protocol`` until ``REQUESTS`` requests have their results."""
    topics = fresh_topics(broker, protocol.lower().replace("_", "-"))
    keyed = ((f"req-{i:06d}".encode(), request_json(i), None) for i in range(REQUESTS))
    produce(broker.plaintext, topics.requests, keyed)
    pipeline = Pipeline(broker.address(protocol), topics, engine_url, tmp_path)
    try:
        pipeline.worker(*extra, env=env)
        results = read_topic(broker.plaintext, topics.results, lambda m: len(m) >= REQUESTS, 90)
        assert len(results) == REQUESTS, f"{len(results)} results over {protocol}"
        ends = end_offsets(broker.plaintext, topics.requests, 2)
        assert wait_until(
            lambda: committed(broker.plaintext, topics.group, topics.requests, 2) == ends, 30
        )
        assert all(w.alive() for w in pipeline.workers)
    finally:
        pipeline.stop()
    return pipeline


CASES = [
    ("SASL_PLAINTEXT", "PLAIN"),
    ("SASL_PLAINTEXT", "SCRAM-SHA-512"),
    ("SSL", None),
    ("SASL_SSL", "SCRAM-SHA-512"),
]


@pytest.mark.parametrize(("protocol", "mechanism"), CASES, ids=lambda v: str(v).lower())
def test_requests_flow_end_to_end_over_tls_and_sasl(
    secure_broker: SecureBroker,
    engine_factory: Callable[..., str],
    tmp_path: Path,
    protocol: str,
    mechanism: str | None,
) -> None:
    env = secure_broker.worker_env(protocol, mechanism)
    flow(secure_broker, engine_factory("instant"), tmp_path, protocol, env)


@pytest.mark.parametrize(
    ("protocol", "mechanism", "spoil"),
    [
        ("SASL_PLAINTEXT", "PLAIN", {"sasl.password": "wrong"}),
        ("SASL_PLAINTEXT", "SCRAM-SHA-512", {"sasl.password": "wrong"}),
        ("SSL", None, {"ssl.ca.location": "probe"}),  # the system CAs did not sign the broker
    ],
    ids=["plain-password", "scram-password", "untrusted-ca"],
)
def test_the_listeners_refuse_bad_credentials(
    secure_broker: SecureBroker, protocol: str, mechanism: str | None, spoil: dict[str, str]
) -> None:
    """The listeners the worker uses really authenticate: the right settings are needed."""
    config = {"bootstrap.servers": secure_broker.address(protocol), "security.protocol": protocol}
    if mechanism is not None:
        user = PLAIN_USER if mechanism == "PLAIN" else SCRAM_USER
        config |= {"sasl.mechanism": mechanism, "sasl.username": user}
    admin = AdminClient({**config, **spoil})
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=10)


def test_secrets_never_reach_logs_metrics_or_the_printed_config(
    secure_broker: SecureBroker, engine_factory: Callable[..., str], tmp_path: Path
) -> None:
    api_key = f"engine-key-{secrets.token_urlsafe(16)}"
    engine_url = engine_factory("instant", "--api-key", api_key)
    env = {
        **secure_broker.worker_env("SASL_SSL", "PLAIN"),
        "EVALSTREAM_ENGINE__API_KEY": api_key,
        # As talkative as it gets: librdkafka dumps its configuration and its SASL exchange.
        "EVALSTREAM_LOG_LEVEL": "DEBUG",
        "EVALSTREAM_KAFKA__CLIENT": json.dumps({"debug": "conf,security"}),
    }
    password = env["EVALSTREAM_KAFKA__SASL_PASSWORD"]
    pipeline = flow(secure_broker, engine_url, tmp_path, "SASL_SSL", env)
    worker = pipeline.workers[0]
    assert worker.log_path is not None
    # The run is over: read what it left behind, then look at a live endpoint and the CLI.
    outputs = {"log": worker.log_path.read_text(errors="replace")}
    probe = pipeline.worker(env=env, name="probe")
    try:
        assert wait_until(lambda: _metrics(probe.metrics_port) is not None, 60)
        assert wait_until(lambda: probe.metric("evalstream_assigned_partitions") > 0, 60)
        outputs["metrics"] = _metrics(probe.metrics_port) or ""
    finally:
        probe.stop()
    check = subprocess.run(
        [sys.executable, "-m", "consumer", "--check-config"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    outputs["check-config"] = check.stdout + check.stderr
    outputs["probe log"] = (tmp_path / "probe.log").read_text(errors="replace")
    assert "evalstream_completed_total" in outputs["metrics"]
    printed = json.loads(check.stdout)
    assert printed["kafka"]["sasl_password"] == "**********"
    assert printed["engine"]["api_key"] == "**********"
    leaks = {name for name, text in outputs.items() if password in text or api_key in text}
    assert leaks == set()


def _metrics(port: int) -> str | None:
    try:
        return httpx.get(f"http://{HOST}:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return None


def _listening(port: int) -> set[str]:
    """The local addresses a TCP socket listens on at ``port`` (from /proc/net/tcp*)."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if int(hex_port, 16) == port and fields[3] == "0A":  # 0A: LISTEN
                found.add(address)
    return found


LOOPBACK = "0100007F"  # 127.0.0.1 as /proc/net/tcp writes it
ANY = "00000000"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/net/tcp")
@pytest.mark.parametrize(("flags", "bound"), [((), LOOPBACK), (("--metrics-host", "0.0.0.0"), ANY)])
def test_the_metrics_endpoint_binds_to_loopback_unless_configured(
    tmp_path: Path, flags: tuple[str, ...], bound: str
) -> None:
    assert MetricsSettings().host == HOST
    assert Settings.model_fields["metrics"].default.host == HOST
    # The endpoint is up before the engine answers, so no engine and no broker are needed.
    pipeline = Pipeline(f"{HOST}:9", Topics("r", "s", "d", "g"), f"http://{HOST}:9", tmp_path)
    try:
        worker = pipeline.worker(*flags)
        assert wait_until(lambda: _metrics(worker.metrics_port) is not None, 60)
        assert _listening(worker.metrics_port) == {bound}
    finally:
        pipeline.stop()
