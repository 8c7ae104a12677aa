"""`ProgressDisplay`: a rich progress bar on stderr, or nothing at all.

The bar shows count, rate and ETA; with an unknown total (stdin, a results topic without
``--expect``) it pulses and shows count and rate only. It is drawn only on a terminal, so logs and
pipes never receive control sequences.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import IO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

BAR_WIDTH = 20


class RateColumn(ProgressColumn):
    """Items per second, as measured by rich over its speed window."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        """Renders ``1,234 msg/s`` (or ``? msg/s`` before the first measurement)."""
        speed = task.finished_speed or task.speed
        shown = "?" if speed is None else f"{speed:,.0f}"
        return Text(f"{shown} {self.unit}/s", style="progress.data.speed", no_wrap=True)


class ProgressDisplay:
    """A progress bar for one task; a no-op when disabled.

    With a known total it shows count, rate and ETA; without one, count, rate and elapsed time.
    The columns fit an 80-column terminal.

    Args:
        description: Text left of the bar; keep it short.
        total: Expected number of items, None when unknown, or a function computing it (called
            only if the bar is drawn, so a costly count is skipped when output is not a terminal).
        unit: Unit shown with the rate (``msg``, ``results``).
        enabled: False to draw nothing; True draws only if ``stream`` is a terminal.
        stream: Where to draw; stderr by default.
    """

    def __init__(
        self,
        description: str,
        total: int | Callable[[], int | None] | None,
        *,
        unit: str = "msg",
        enabled: bool = True,
        stream: IO[str] | None = None,
    ) -> None:
        console = Console(file=stream, stderr=stream is None)
        self.enabled = enabled and console.is_terminal
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        if self.enabled:
            count = total() if callable(total) else total
            timing: tuple[ProgressColumn, ...] = (
                (TextColumn("ETA"), TimeRemainingColumn()) if count else (TimeElapsedColumn(),)
            )
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("[progress.description]{task.description}"),
                BarColumn(bar_width=BAR_WIDTH),
                MofNCompleteColumn(),
                RateColumn(unit),
                *timing,
                console=console,
            )
            self._task = self._progress.add_task(description, total=count)

    def advance(self, count: int = 1) -> None:
        """Adds ``count`` finished items."""
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, count)

    def describe(self, description: str) -> None:
        """Replaces the text left of the bar (for running counts such as duplicates)."""
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, description=description)

    def __enter__(self) -> ProgressDisplay:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
