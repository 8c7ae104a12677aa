"""`FilePublisher`: publishes every valid line of an input and accounts for every other one.

The steps for each line: reject it (stderr and the rejects file) or wait for a rate token,
produce it and serve delivery callbacks. At the end, flush and count what the broker
acknowledged. Reading stops at the first delivery failure: the input is left where it is rather
than queueing thousands more messages to a broker that refuses them.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TextIO

from producer.progress import ProgressDisplay
from producer.publish import Headers, RequestPublisher
from producer.ratelimit import TokenBucket
from producer.validation import CheckedLine, RejectedLine

# Reasons printed on stderr when a rejects file holds them all anyway.
STDERR_REJECT_LIMIT = 20


@dataclass(frozen=True, slots=True)
class PublishReport:
    """The outcome of publishing one input.

    Attributes:
        published: Messages the broker acknowledged.
        rejected: Lines that did not match the contract and were not sent.
        failed: Messages produced but not acknowledged (delivery errors and timeouts).
        seconds: Wall time from the first line to the end of the final flush.
        first_error: The first delivery error, if any.
        interrupted: Whether the run was cut short (Ctrl-C).
    """

    published: int
    rejected: int
    failed: int
    seconds: float
    first_error: str | None = None
    interrupted: bool = False

    @property
    def rate(self) -> float:
        """Acknowledged messages per second."""
        return self.published / self.seconds if self.seconds > 0 else 0.0

    def render(self) -> str:
        """One summary line, ``published 1,000 · rejected 37 · failed 0 · 1.20 s · 833 msg/s``."""
        text = (
            f"published {self.published:,} · rejected {self.rejected:,} · "
            f"failed {self.failed:,} · {self.seconds:.2f} s · {self.rate:,.0f} msg/s"
        )
        return text + (" · interrupted" if self.interrupted else "")


class RejectLog:
    """Reports rejected lines as ``line N: reason`` on stderr, and in a rejects file if given.

    With a rejects file, each rejection is a JSON line ``{"line", "reason", "text"}`` there and
    only the first `STDERR_REJECT_LIMIT` reasons also go to stderr.

    Args:
        path: The rejects file, or None.
        stream: Where reasons are printed; by default whatever ``sys.stderr`` is at the time,
            so that a live progress bar can route the lines above itself.
    """

    def __init__(self, path: str | None = None, stream: TextIO | None = None) -> None:
        self.path = path
        self.count = 0
        self._stream = stream
        self._file: TextIO | None = None
        if path is not None:
            self._file = Path(path).open("w", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def add(self, rejected: RejectedLine) -> None:
        """Records one rejected line."""
        self.count += 1
        if self._file is None or self.count <= STDERR_REJECT_LIMIT:
            print(f"line {rejected.number}: {rejected.reason}", file=self._stream or sys.stderr)
        if self._file is not None:
            record = {"line": rejected.number, "reason": rejected.reason, "text": rejected.text}
            self._file.write(json.dumps(record, ensure_ascii=False) + "\n")

    def close(self) -> None:
        """Closes the rejects file and says how many reasons stderr did not show."""
        if self._file is None:
            return
        self._file.close()
        hidden = self.count - STDERR_REJECT_LIMIT
        if hidden > 0:
            print(
                f"... {hidden:,} more rejected line(s) in {self.path}",
                file=self._stream or sys.stderr,
            )

    def __enter__(self) -> RejectLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class FilePublisher:
    """Publishes a stream of checked lines through a `RequestPublisher`.

    Args:
        publisher: Produces the messages and counts acknowledgements.
        rejects: Where rejected lines are reported.
        headers: Headers added to every message.
        rate: Messages per second at most, or None for as fast as possible.
        flush_timeout: Seconds the final flush may wait for acknowledgements.
        clock: Monotonic clock (tests inject one).
    """

    def __init__(
        self,
        publisher: RequestPublisher,
        rejects: RejectLog,
        *,
        headers: Headers | None = None,
        rate: float | None = None,
        flush_timeout: float = 90.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.publisher = publisher
        self.rejects = rejects
        self.headers = headers
        self.flush_timeout = flush_timeout
        self._bucket = TokenBucket(rate, clock=clock) if rate else None
        self._clock = clock

    def run(self, lines: Iterable[CheckedLine], progress: ProgressDisplay) -> PublishReport:
        """Publishes every valid line, reports every rejected one, and confirms delivery.

        Args:
            lines: The checked input lines.
            progress: Advanced once per line.

        Returns:
            The counts; ``failed`` includes messages still unconfirmed after the flush.
        """
        started = self._clock()
        interrupted = False
        try:
            for line in lines:
                if isinstance(line, RejectedLine):
                    self.rejects.add(line)
                    progress.describe(f"publishing ({self.rejects.count:,} rejected)")
                else:
                    self._wait_for_token()
                    self.publisher.publish_line(line, headers=self.headers)
                progress.advance()
                if self.publisher.failed:
                    break
        except KeyboardInterrupt:
            interrupted = True
        self.publisher.flush(self.flush_timeout)
        return PublishReport(
            published=self.publisher.delivered,
            rejected=self.rejects.count,
            failed=self.publisher.failed + self.publisher.pending,
            seconds=self._clock() - started,
            first_error=self.publisher.first_error,
            interrupted=interrupted,
        )

    def _wait_for_token(self) -> None:
        """Blocks until the rate limit allows one more message, serving callbacks meanwhile."""
        if self._bucket is None:
            return
        while not self._bucket.try_take():
            self.publisher.poll(self._bucket.delay())
