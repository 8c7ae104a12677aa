"""librdkafka's log through Python logging: one clear line when Kafka is away, not hundreds.

Each client's ``logger`` option points at a `KafkaLog`: librdkafka's lines arrive as records of
the ``consumer.kafka`` logger, in the worker's text or JSON format. A broker that cannot be
reached makes librdkafka log every connection attempt (several a second per client); those lines
become one of ours, "cannot reach Kafka at HOST:PORT (N attempts over S s; retrying): <the
last reason>", repeated at a slowing interval (10, 30, 90, 270 s into the outage, then every
5 minutes). Any other line repeated verbatim is let through once a minute. The same state
answers ``/readyz``: not ready while connection attempts keep failing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

# librdkafka's words for a connection that could not be made or was lost.
_UNREACHABLE = (
    "Connection refused",
    "Connect to",
    "brokers are down",
    "Failed to resolve",
    "Disconnected",
    "timed out",
)
_FIRST_REPEAT_S, _MAX_REPEAT_S = 10.0, 300.0
_QUIET_S = 60.0  # no failure for this long: the episode is over (Kafka was reached)
_SAME_LINE_S = 60.0


class KafkaLog(logging.Filter):
    """Rewrites and rate-limits librdkafka's records; `logger` is what clients are given."""

    def __init__(self, bootstrap: str, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._bootstrap = bootstrap
        self._clock = clock
        self._lock = threading.Lock()  # librdkafka logs from each client's polling thread
        self._first = self._last = self._next_report = 0.0
        self._attempts = 0
        self._seen: dict[str, float] = {}
        self.logger = logging.getLogger("consumer.kafka")
        self.logger.addFilter(self)

    def problem(self) -> str | None:
        """Why Kafka is not reachable now; None when no attempt failed lately."""
        with self._lock:
            if not self._attempts or self._clock() - self._last > _QUIET_S:
                return None
            return self._describe()

    def filter(self, record: logging.LogRecord) -> bool:
        """Lets a record through, rewritten, or drops it (librdkafka: fac, name, text)."""
        args = record.args if isinstance(record.args, tuple) else ()
        text = str(args[2]) if len(args) == 3 else record.getMessage()
        now = self._clock()
        with self._lock:
            if any(word in text for word in _UNREACHABLE):
                return self._unreachable(record, text, now)
            last = self._seen.get(text)
            if last is not None and now - last < _SAME_LINE_S:
                return False
            self._seen[text] = now
            if len(self._seen) > 1000:
                self._seen.clear()  # bounded whatever librdkafka says
            return True

    def _unreachable(self, record: logging.LogRecord, text: str, now: float) -> bool:
        if not self._attempts or now - self._last > _QUIET_S:
            self._first, self._attempts, self._next_report = now, 0, now
        self._attempts += 1
        self._last = now
        if now < self._next_report:
            return False
        waited = self._next_report - self._first
        self._next_report = now + min(_MAX_REPEAT_S, max(_FIRST_REPEAT_S, 2 * waited))
        record.msg, record.args = "%s: %s", (self._describe(), text)
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True

    def _describe(self) -> str:
        span = self._last - self._first
        return (
            f"cannot reach Kafka at {self._bootstrap} "
            f"({self._attempts} attempts over {span:.0f} s; retrying)"
        )
