"""Launchers of the real engines in the test suite: llama.cpp's llama-server and Ollama.

Each starts its server on a free 127.0.0.1 port, waits for its health endpoint under a
deadline and stops its whole process group; the binaries come from `tests.engines.builds`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

import httpx

from evalstream_local.processes import die_with_parent_hook
from tests.engines.build_steps import EngineSetupError, log_tail, run_step
from tests.engines.builds import HOST, SERVED_MODEL


class EngineServer:
    """An engine process on 127.0.0.1, started under a health deadline and stopped cleanly.

    Args:
        command: the server command.
        port: the port it listens on.
        env: extra environment variables.
        log_path: where its stdout and stderr go.
    """

    health_path: ClassVar[str] = "/health"

    def __init__(
        self,
        command: Sequence[str],
        port: int,
        *,
        env: Mapping[str, str] | None = None,
        log_path: Path,
    ) -> None:
        self.command = list(command)
        self.port = port
        self.log_path = log_path
        self._env = {**os.environ, **(env or {})}
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:PORT``."""
        return f"http://{HOST}:{self.port}"

    def start(self, timeout: float = 120.0) -> str:
        """Starts the server and waits until its health endpoint answers 200; returns the URL.

        Raises:
            EngineSetupError: the server exited or was not healthy within ``timeout``.
        """
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=self._env, start_new_session=True, preexec_fn=die_with_parent_hook(),
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.url, timeout=2.0) as client:
            while not self._healthy(client):
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    code = self._proc.poll()
                    self.stop()
                    raise EngineSetupError(
                        f"{Path(self.command[0]).name} was not healthy within {timeout:.0f} s "
                        f"(exit code {code}); the end of {self.log_path}:\n"
                        + log_tail(self.log_path)
                    )
                time.sleep(0.2)
        return self.url

    def _healthy(self, client: httpx.Client) -> bool:
        try:
            return client.get(self.health_path).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM to its process group (runners included), SIGKILL after ``timeout``."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        return proc.returncode

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class LlamaServer(EngineServer):
    """``llama-server`` serving one GGUF model under ``alias`` with continuous batching.

    ``ctx_size`` is shared by the ``parallel`` slots (2048 tokens each by default). With
    ``--metrics`` its ``/metrics`` reports its slots' occupancy, which the worker's window follows.
    """

    def __init__(
        self,
        binary: Path,
        model: Path,
        *,
        log_path: Path,
        port: int | None = None,
        parallel: int = 4,
        ctx_size: int = 8192,
        alias: str = SERVED_MODEL,
        extra_args: Sequence[str] = (),
    ) -> None:
        port = port or free_port()
        command = [
            str(binary), "-m", str(model), "--host", HOST, "--port", str(port),
            "--parallel", str(parallel), "-c", str(ctx_size), "--cont-batching",
            "--alias", alias, "--no-webui", "--metrics", *extra_args,
        ]  # fmt: skip
        super().__init__(command, port, log_path=log_path)


class OllamaServer(EngineServer):
    """``ollama serve`` with its own model store (and key) under ``home``."""

    health_path = "/api/version"

    def __init__(
        self,
        binary: Path,
        home: Path,
        *,
        log_path: Path,
        port: int | None = None,
        parallel: int = 4,
        env: Mapping[str, str] | None = None,
    ) -> None:
        port = port or free_port()
        self.binary = binary
        settings = {
            "HOME": str(home),  # ollama writes its identity key under ~/.ollama
            "OLLAMA_HOST": f"{HOST}:{port}",
            "OLLAMA_MODELS": str(home / "models"),
            "OLLAMA_NUM_PARALLEL": str(parallel),
            "OLLAMA_MAX_LOADED_MODELS": "1",
            **(env or {}),
        }
        super().__init__([str(binary), "serve"], port, env=settings, log_path=log_path)

    def create_model(self, name: str, gguf: Path, timeout: float = 300.0) -> None:
        """``ollama create NAME`` from a GGUF file (the chat template comes from its metadata).

        Raises:
            EngineSetupError: the create command failed.
        """
        modelfile = self.log_path.with_name(f"{name}.Modelfile")
        modelfile.write_text(f"FROM {gguf}\n")
        run_step(
            [str(self.binary), "create", name, "-f", str(modelfile)],
            self.log_path.with_name(f"{name}.create.log"),
            timeout=timeout,
            env={"OLLAMA_HOST": f"{HOST}:{self.port}"},
        )
