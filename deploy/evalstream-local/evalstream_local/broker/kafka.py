"""A single-node Apache Kafka broker (KRaft) run from its Maven Central jars, without Docker.

The jars are resolved once by Maven from ``pom.xml`` (package data beside this module) into a
cache directory; the storage is formatted with ``kafka.tools.StorageTool`` and the broker runs
as ``kafka.Kafka`` on free 127.0.0.1 ports.

The Java process is tied to this Python process twice over: it runs in its own session (so a
Ctrl-C in the terminal reaches only Python, which then stops the broker cleanly), and on Linux
it asks the kernel for ``PR_SET_PDEATHSIG`` = SIGKILL, so it dies when the thread that started it
dies, even if Python is killed with SIGKILL. Start the broker from a thread that outlives it
(the main thread, a pytest fixture).
"""

from __future__ import annotations

import base64
import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from evalstream_local import processes
from evalstream_local.broker.jars import (
    LOG_CONFIG,
    LocalKafkaError,
    default_cache_dir,
    ensure_jars,
)

HOST = "127.0.0.1"

# Small and gentle: the broker shares a two-core machine with the tests and the worker. C1 only
# (TieredStopAtLevel=1) starts faster and keeps the JIT from competing for the cores.
JVM_OPTIONS = (
    "-Xms256m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:-UsePerfData",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
        return True
    return False


def new_cluster_id() -> str:
    """A fresh KRaft cluster id."""
    # Kafka's Uuid text form: 16 random bytes, URL-safe base64 without padding.
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


def _write_properties(path: Path, properties: Mapping[str, str]) -> None:
    # Backslash is the one escape character a Java properties value needs doubled.
    escaped = {key: value.replace("\\", "\\\\") for key, value in properties.items()}
    path.write_text("".join(f"{key}={value}\n" for key, value in escaped.items()))


class LocalKafka:
    """A single-node KRaft broker (broker and controller in one JVM) on 127.0.0.1.

    Args:
        data_dir: Where the configuration, the broker log and the partition data live. None means
            a temporary directory that ``stop()`` deletes; a given directory is kept, and a broker
            started on it again finds its topics, messages and committed offsets.
        port: The client (PLAINTEXT) port; None picks a free one. The controller port is always
            picked free. Both are kept across ``restart()``.
        cache_dir: Where the jars are kept; defaults to ``default_cache_dir()``.
        broker_config: Broker properties that override or extend the defaults. The readiness
            probe speaks PLAINTEXT to ``bootstrap``, so that listener has to stay.
        java: The Java 17+ executable.
        controller_port: The controller port; None picks a free one. A node of a cluster needs
            it fixed before it starts, because every voter names every other's port.
        cluster_id: The id the storage is formatted with; None draws one. Every node of one
            cluster must share it.
    """

    def __init__(
        self,
        data_dir: Path | None = None,
        port: int | None = None,
        *,
        cache_dir: Path | None = None,
        broker_config: Mapping[str, str] | None = None,
        java: str = "java",
        controller_port: int | None = None,
        cluster_id: str | None = None,
    ) -> None:
        self._run_dir = data_dir
        self._owns_dir = data_dir is None
        self._port = port
        self._controller_port = controller_port
        self._cluster_id = cluster_id
        self._cache_dir = cache_dir or default_cache_dir()
        self._broker_config = dict(broker_config or {})
        self._java = java
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """The ``bootstrap.servers`` value for clients, known once the broker has started."""
        if self._port is None:
            raise LocalKafkaError("the broker has not been started")
        return f"{HOST}:{self._port}"

    @property
    def port(self) -> int | None:
        """The client port, once picked (at the first start when none was given)."""
        return self._port

    @property
    def data_dir(self) -> Path | None:
        """The directory holding configuration, log and data, once there is one."""
        return self._run_dir

    @property
    def running(self) -> bool:
        """Whether the broker process is alive (a paused one counts as alive)."""
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 90.0) -> str:
        """Starts the broker and waits until it answers a metadata request.

        Args:
            timeout: Seconds to wait for the broker, counted after the jars are in place.

        Returns:
            The bootstrap address, ``127.0.0.1:PORT``.

        Raises:
            LocalKafkaError: The jars, the formatting or the broker failed, or it did not answer.
        """
        if self.running:
            return self.bootstrap
        ensure_jars(self._cache_dir)  # first, so the timeout counts from when they are in place
        deadline = time.monotonic() + timeout
        self.launch(timeout)
        return self.wait_ready(max(1.0, deadline - time.monotonic()))

    def launch(self, timeout: float = 90.0) -> None:
        """Formats the storage when it is new and starts the JVM, without waiting for it.

        A node of a multi-node quorum cannot answer until enough voters run: a cluster launches
        every node first and then waits for each (``wait_ready``).

        Raises:
            LocalKafkaError: The jars, the formatting or the launch failed.
        """
        if self.running:
            return
        libs = ensure_jars(self._cache_dir)
        deadline = time.monotonic() + timeout
        run_dir = self._prepare_run_dir()
        config = run_dir / "server.properties"
        _write_properties(config, self._properties(run_dir))
        if not (run_dir / "kraft" / "meta.properties").exists():
            self._format(libs, config, deadline)
        self._launch(libs, config, run_dir)

    def wait_ready(self, timeout: float = 90.0) -> str:
        """Waits until the launched broker answers a metadata request; kills it if it does not.

        Returns:
            The bootstrap address, ``127.0.0.1:PORT``.
        """
        try:
            self._wait_ready(time.monotonic() + timeout)
        except BaseException:
            self._shutdown(signal.SIGKILL, 10.0)
            raise
        return self.bootstrap

    def stop(self, timeout: float = 30.0) -> None:
        """Stops the broker (SIGTERM, then SIGKILL after ``timeout``); deletes a temporary dir."""
        self._shutdown(signal.SIGTERM, timeout)
        if self._owns_dir and self._run_dir is not None:
            shutil.rmtree(self._run_dir, ignore_errors=True)
            self._run_dir = None

    def kill(self) -> None:
        """Kills the broker with SIGKILL, as a crash would; the data stays for ``restart()``."""
        self._shutdown(signal.SIGKILL, 30.0)

    def pause(self) -> None:
        """Freezes the broker (SIGSTOP): connections stay open but nothing answers.

        Returns once every thread of the JVM has stopped.
        """
        processes.stop(self._require_proc().pid)

    def resume(self) -> None:
        """Lets a paused broker run again (SIGCONT); returns once no thread is stopped."""
        processes.cont(self._require_proc().pid)

    def restart(self, timeout: float = 90.0) -> str:
        """Stops the broker cleanly if it runs, and starts it again on the same data and ports."""
        self._shutdown(signal.SIGTERM, 30.0)
        return self.start(timeout)

    def __enter__(self) -> LocalKafka:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _prepare_run_dir(self) -> Path:
        if self._run_dir is None:
            self._run_dir = Path(tempfile.mkdtemp(prefix="evalstream-kafka-"))
        self._run_dir.mkdir(parents=True, exist_ok=True)
        if self._port is None:
            self._port = free_port()
        if self._controller_port is None:
            self._controller_port = free_port()
        return self._run_dir

    def _properties(self, run_dir: Path) -> dict[str, str]:
        port, controller = self._port, self._controller_port
        properties = {
            "process.roles": "broker,controller",
            "node.id": "1",
            # A static voter set: StorageTool then formats without --standalone, and a single
            # node has nothing to reconfigure.
            "controller.quorum.voters": f"1@{HOST}:{controller}",
            "controller.listener.names": "CONTROLLER",
            "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(run_dir / "kraft"),
            # One broker: internal topics cannot have more replicas than that.
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # The default 50 partitions each cost seconds to create on a small machine.
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.num.partitions": "4",
            # After a crash the new registration waits for the dead one's session to expire
            # (default 9 s); faults tests kill and restart the broker often.
            "broker.heartbeat.interval.ms": "500",
            "broker.session.timeout.ms": "3000",
            # Tests and the demo rebalance often; the default 3 s first-join delay only slows them.
            "group.initial.rebalance.delay.ms": "0",
            # Topics are created explicitly; a misspelt topic name must fail, not create a topic.
            "auto.create.topics.enable": "false",
        }
        properties.update(self._broker_config)
        return properties

    def _java_command(self, libs: Path, main: str, *args: str) -> list[str]:
        logging = f"-Dlog4j2.configurationFile={LOG_CONFIG}"
        return [self._java, *JVM_OPTIONS, logging, "-cp", f"{libs}/*", main, *args]

    def _format(self, libs: Path, config: Path, deadline: float) -> None:
        # "=": a random id may begin with "-", which a separate argument would turn into a flag.
        cluster_id = self._cluster_id or new_cluster_id()
        arguments = ("format", f"--cluster-id={cluster_id}", "-c", str(config))
        command = self._java_command(libs, "kafka.tools.StorageTool", *arguments)
        remaining = max(1.0, deadline - time.monotonic())
        try:
            result = subprocess.run(command, capture_output=True, timeout=remaining, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise LocalKafkaError(f"formatting the storage failed: {exc}") from exc
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace")[-4000:]
            raise LocalKafkaError(f"formatting the storage failed:\n{output}")

    def _launch(self, libs: Path, config: Path, run_dir: Path) -> None:
        command = self._java_command(libs, "kafka.Kafka", str(config))
        with (run_dir / "broker.log").open("ab") as log:
            try:
                self._proc = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=run_dir,
                    start_new_session=True,
                    preexec_fn=processes.die_with_parent_hook(),
                )
            except OSError as exc:
                raise LocalKafkaError(f"cannot run {self._java}: {exc}") from exc

    def _wait_ready(self, deadline: float) -> None:
        admin: AdminClient | None = None
        proc = self._require_proc()
        while True:
            if proc.poll() is not None:
                raise LocalKafkaError(
                    f"the broker exited with code {proc.returncode}:\n{self._log_tail()}"
                )
            if time.monotonic() > deadline:
                raise LocalKafkaError(f"the broker did not answer in time:\n{self._log_tail()}")
            # A closed port is checked first: librdkafka would log every refused connection.
            if self._port is not None and _port_open(self._port):
                admin = admin or AdminClient({"bootstrap.servers": self.bootstrap})
                with contextlib.suppress(KafkaException):
                    if admin.list_topics(timeout=2.0).brokers:
                        return
            time.sleep(0.2)

    def _shutdown(self, sig: signal.Signals, timeout: float) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(sig)
            # A paused JVM would hold the SIGTERM until it is continued.
            proc.send_signal(signal.SIGCONT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._proc = None

    def _require_proc(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise LocalKafkaError("the broker is not running")
        return self._proc

    def _log_tail(self, lines: int = 40) -> str:
        path = self._run_dir / "broker.log" if self._run_dir else None
        if path is None or not path.exists():
            return "(no broker log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
