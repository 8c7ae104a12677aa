"""`ResultCollector`: stores the results a `ResultReader` returns and counts every outcome.

The collector's steps per poll: hand new results to the sink (dead letters are counted, not
stored), flush the sink, and only then commit offsets (with an explicit group), so a crash never
commits a result that was not stored. It stops when ``expect`` requests have an outcome, or after
``until_idle`` seconds without a message (None: it waits for ever), or on Ctrl-C.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from producer.dead_letters import DeadLetter
from producer.progress import ProgressDisplay
from producer.result_reader import Outcome
from producer.result_view import ResultView
from producer.sinks import ResultStore
from producer.summary import ResultStats

# Sink flush and offset commit cadence while results keep arriving.
FLUSH_INTERVAL_S = 1.0
# The idle clock measures silence of assigned partitions; joining the group comes first and may
# take longer than a short idle limit (a fresh cluster creates its offsets topic on the first
# join), so until the first assignment the limit is at least this.
JOIN_S = 30.0


@dataclass(frozen=True, slots=True)
class CollectReport:
    """The outcome of one collect run."""

    stats: ResultStats
    output: str
    elapsed_s: float
    expected: int | None
    stopped_by: str

    @property
    def complete(self) -> bool:
        """Whether the expected number of outcomes arrived (True when none was expected)."""
        return self.expected is None or self.stats.outcomes >= self.expected

    @property
    def written(self) -> int:
        """Results the sink stored (distinct results minus those of a shape it does not take)."""
        return self.stats.distinct - self.stats.skipped

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values (``--json-summary``)."""
        return {
            **self.stats.to_dict(),
            "expected": self.expected,
            "complete": self.complete,
            "stopped_by": self.stopped_by,
            "elapsed_s": round(self.elapsed_s, 3),
            "output": self.output,
        }

    def shortfall(self) -> str:
        """Why an incomplete run failed: ``expected 10 results, collected 7 (...)``."""
        stats = self.stats
        return (
            f"expected {self.expected or 0:,} results, collected {stats.outcomes:,} "
            f"({stats.distinct:,} results, {stats.dead_letters:,} dead letters); "
            f"stopped {self.stopped_by}"
        )

    def nothing_written(self, source: str, target: str) -> str:
        """Why a run that stored no result failed, naming what it read and where it wrote."""
        stats = self.stats
        if not stats.outcomes:
            return f"no results arrived from {source} (stopped {self.stopped_by}); nothing written"
        if not stats.distinct:
            return (
                f"all {stats.dead_letters:,} requests were dead-lettered "
                f"({stats.dead_letter_text()}); nothing written to {target}"
            )
        dead = f"; {stats.dead_letters:,} dead-lettered" if stats.dead_letters else ""
        return (
            f"none of the {stats.distinct:,} results is an OpenAI batch output line (native "
            f"requests give native results{dead}); nothing written to {target}"
        )

    def render(self) -> str:
        """The report as text for a terminal."""
        expected = f" of {self.expected:,} expected" if self.expected is not None else ""
        return "\n".join(
            (
                self.stats.render(),
                f"stopped      {self.stopped_by}{expected} · {self.elapsed_s:,.1f} s",
                f"written to   {self.output}",
            )
        )


class ResultSource(Protocol):
    """What `ResultCollector` needs from a reader (a `ResultReader`, or a fake in tests)."""

    received: int
    duplicates: int
    invalid: int
    assignments: int

    def poll(self, timeout: float = ...) -> list[Outcome]:
        """Returns the new distinct outcomes read within ``timeout`` seconds."""
        ...

    def commit(self) -> None:
        """Commits what was returned so far, if the reader commits at all."""
        ...


class ResultCollector:
    """Stores distinct results in a sink until enough arrived or the topic went quiet.

    Args:
        reader: The de-duplicating reader.
        sink: Where results go.
        expect: Stop after this many requests have an outcome (a result or a dead letter).
        until_idle: Stop after this many seconds without any message; None waits for ever.
        clock: Monotonic clock (tests inject one).
    """

    def __init__(
        self,
        reader: ResultSource,
        sink: ResultStore,
        *,
        expect: int | None = None,
        until_idle: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reader = reader
        self.sink = sink
        self.expect = expect
        self.until_idle = until_idle
        self.stats = ResultStats()
        self._clock = clock

    def run(self, progress: ProgressDisplay) -> CollectReport:
        """Collects until a stop condition holds or Ctrl-C, then flushes and commits."""
        started = self._clock()
        try:
            stopped_by = self._loop(progress)
        except KeyboardInterrupt:
            stopped_by = "interrupted"
        self.sink.flush()
        self.reader.commit()
        stats = self.stats
        stats.duplicates, stats.invalid = self.reader.duplicates, self.reader.invalid
        return CollectReport(
            stats, self.sink.description, self._clock() - started, self.expect, stopped_by
        )

    def _loop(self, progress: ProgressDisplay) -> str:
        """Polls and stores; returns why it stopped."""
        last_activity = last_flush = self._clock()
        seen = (self.reader.received, self.reader.assignments)
        while True:
            for received in self.reader.poll(timeout=self._poll_timeout(last_activity)):
                self._store(received)
                progress.advance()
            now = self._clock()
            if (self.reader.received, self.reader.assignments) != seen:
                seen = (self.reader.received, self.reader.assignments)
                last_activity = now
                progress.describe(f"collecting ({self.reader.duplicates:,} dup)")
            if now - last_flush >= FLUSH_INTERVAL_S:
                self.sink.flush()
                self.reader.commit()
                last_flush = now
            if self.expect is not None and self.stats.outcomes >= self.expect:
                return f"after {self.stats.outcomes:,} outcomes"
            limit = self._idle_limit()
            if limit is not None and now - last_activity >= limit:
                if not self.reader.assignments:
                    return f"with no partition assigned within {limit:g} s"
                return f"idle for {limit:g} s"

    def _idle_limit(self) -> float | None:
        """Seconds of silence that end the run (None: none do); see `JOIN_S`."""
        if self.until_idle is None or self.reader.assignments:
            return self.until_idle
        return max(self.until_idle, JOIN_S)

    def _poll_timeout(self, last_activity: float) -> float:
        """Waits at most until the idle deadline, and never longer than a second."""
        limit = self._idle_limit()
        if limit is None:
            return 1.0
        left = limit - (self._clock() - last_activity)
        return max(0.01, min(1.0, left))

    def _store(self, received: Outcome) -> None:
        """Counts one outcome; writes a result if the sink takes its shape."""
        if isinstance(received, DeadLetter):
            self.stats.add_dead_letter(received.reason)
            return
        view = ResultView.of(received.result, received.timestamp)
        self.stats.add(view)
        if self.sink.accepts(received.result):
            self.sink.write(received.result, received.value, view)
        else:
            self.stats.skipped += 1
