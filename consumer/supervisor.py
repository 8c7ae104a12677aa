"""The supervisor: owns every task and thread the worker starts, and notices when one dies.

Three kinds of death reach it: a task of the event loop that raises or returns while the
worker runs (`spawn`), a thread that ends with an error (its owner calls `thread_died`), and a
confluent-kafka client that reports a fatal error through its ``error_cb`` (`error_cb`), which
librdkafka uses for what no retry can mend (an idempotent producer's broken sequence, a fenced
member). Each turns `/healthz` red, logs **one** line naming the part and the cause
("stopping: the results producer failed: ..."), and asks the worker to stop like on SIGTERM:
it drains what it safely can and commits only what was acknowledged, so uncommitted work is
read again by the next owner, and the process exits non-zero.

Threads: `error_cb` and `thread_died` may be called from any thread; the rest runs on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from confluent_kafka import KafkaError

log = logging.getLogger(__name__)


class Supervisor:
    """Watches the worker's parts; the first failure stops the process with exit code 1.

    Args:
        loop: the event loop the worker runs on.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._tasks: dict[asyncio.Task[None], str] = {}
        self._stopping = False
        self._on_failure: Callable[[], None] = lambda: None
        self.cause: str | None = None  # the first failure, "<part> failed: <why>"

    @property
    def failed(self) -> bool:
        """Whether a part died: the process must exit non-zero."""
        return self.cause is not None

    def on_failure(self, stop: Callable[[], None]) -> None:
        """Names what a failure calls (the worker's stop), once the worker exists; a part
        that died before calls it at once."""
        self._on_failure = stop
        if self.cause is not None:
            stop()

    def fail(self, part: str, cause: str) -> None:
        """A part died (event loop only): red health, one line, and a stop."""
        if self.cause is not None:
            return  # one line: the first cause is the one an operator needs
        self.cause = f"{part} failed: {cause}"
        log.error("stopping: %s", self.cause)
        self._on_failure()

    def thread_died(self, part: str, cause: str) -> None:
        """A thread of ``part`` ended with an error (any thread)."""
        self._loop.call_soon_threadsafe(self.fail, part, cause)

    def error_cb(self, part: str) -> Callable[[KafkaError], None]:
        """The ``error_cb`` of a confluent-kafka client of ``part``: fatal errors stop us.

        Other errors (a broker that cannot be reached, a transport error) are transient:
        librdkafka retries them and `consumer.kafka_log` reports them.
        """

        def on_error(error: KafkaError) -> None:
            if error.fatal():
                self.thread_died(part, f"fatal Kafka error: {error.str()}")

        return on_error

    def spawn(self, part: str, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Runs ``coroutine`` as a task of ``part``; its death (raising, or returning before
        the worker stops) fails the worker."""
        task = asyncio.create_task(coroutine, name=part)
        self._tasks[task] = part
        task.add_done_callback(self._ended)
        return task

    def _ended(self, task: asyncio.Task[None]) -> None:
        part = self._tasks.pop(task, "a task")
        if task.cancelled():
            return  # stopped by us
        error = task.exception()
        if error is not None:
            log.debug("%s failed", part, exc_info=error)
            self.fail(part, f"{type(error).__name__}: {error}")
        elif not self._stopping:
            self.fail(part, "ended unexpectedly")

    async def stop(self) -> None:
        """Cancels every task it spawned and waits for them (the worker is stopping)."""
        self._stopping = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            # Each one's death was reported by `_ended`; nothing is dropped silently here.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
