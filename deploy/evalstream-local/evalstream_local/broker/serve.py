"""``evalstream-local kafka``: a local broker in the foreground, with the default topics."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from types import FrameType

from evalstream_local.broker.kafka import LocalKafka
from evalstream_local.topics import create_topics


def serve(
    data_dir: Path | None,
    port: int | None,
    topics: Mapping[str, int] | None = None,
    config: Mapping[str, str] | None = None,
) -> int:
    """Runs a broker in the foreground until SIGTERM or SIGINT (``evalstream-local kafka``).

    ``config`` holds broker properties over the local defaults.

    The first line on stdout is ``bootstrap=127.0.0.1:PORT``, printed once ``topics`` (name ->
    partitions) exist, so the README's publish and worker commands work against it at once.

    Returns:
        0 after a requested stop, 1 if the broker died on its own.
    """
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with LocalKafka(data_dir, port, broker_config=config) as kafka:
            create_topics(kafka.bootstrap, topics or {})
            print(f"bootstrap={kafka.bootstrap}", flush=True)
            for name, count in (topics or {}).items():
                print(f"topic {name}: {count} partitions", flush=True)
            while not stop.wait(1.0):
                if not kafka.running:
                    print(f"the broker died; see {kafka.data_dir}/broker.log", file=sys.stderr)
                    return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
