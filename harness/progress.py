"""What a run prints while it runs: a live display on a terminal, plain lines elsewhere.

On a terminal (stdout is a TTY) a ``rich`` progress display shows the cells done / total, the
current cell and epoch, the elapsed time and an estimate of the time left; each finished cell
stays printed above it. Elsewhere (CI, a pipe, a file) every epoch and cell is one plain line,
flushed as it happens. ``--quiet`` prints neither: only errors and the findings.

Every progress line of a run goes through :func:`emit` (the runner's default printer); a
:class:`Display` made current by :func:`showing` decides what becomes of it. The display also
follows the run through the observer hooks (``harness_run_started``/``cell_finished``/
``run_finished``). ``rich`` is imported only when a display starts.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from harness.hookspecs import hookimpl

EPOCH_LINE = re.compile(r"(?P<cell>\S+)\s+epoch (?P<epoch>\d+)/(?P<epochs>\d+)")
PLAIN, LIVE, QUIET = "plain", "live", "quiet"
_current: Display | None = None


def emit(text: str) -> None:
    """Print a progress line: through the current display, else plainly (flushed)."""
    if _current is not None:
        _current.line(text)
    else:
        print(text, flush=True)


def choose_mode(quiet: bool, stream: TextIO | None = None) -> str:
    """``quiet`` when asked, ``live`` on a terminal, else ``plain``."""
    if quiet:
        return QUIET
    stream = stream or sys.stdout
    return LIVE if getattr(stream, "isatty", lambda: False)() else PLAIN


class Display:
    """The progress of one run in one of three modes (see :func:`choose_mode`)."""

    def __init__(self, mode: str, stream: TextIO | None = None) -> None:
        self.mode, self.stream = mode, stream or sys.stdout
        self.total, self.done, self.fraction = 0, 0, 0.0
        self.progress: Any = None
        self.task: Any = None

    def start(self, total: int) -> None:
        """Begin a run of ``total`` cells (the live display appears now)."""
        self.total, self.done, self.fraction = total, 0, 0.0
        if self.mode != LIVE or self.progress is not None:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        console = Console(file=self.stream, force_terminal=True)
        self.progress = Progress(
            TextColumn("cells"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("elapsed"),
            TimeElapsedColumn(),
            TextColumn("left ~"),
            TimeRemainingColumn(),
            TextColumn("{task.description}"),
            console=console,
            speed_estimate_period=3600,
        )
        self.progress.start()
        self.task = self.progress.add_task("starting", total=max(total, 1))

    def line(self, text: str) -> None:
        """One progress line: printed (plain), shown as the current step (live), or dropped."""
        if self.mode == QUIET:
            return
        if self.mode == PLAIN or self.progress is None:
            print(text, file=self.stream, flush=True)
            return
        epoch = EPOCH_LINE.search(text)
        if epoch:
            part = int(epoch["epoch"]) / max(int(epoch["epochs"]), 1)
            self.fraction = min(part, 0.999)
            current = f"{epoch['cell']} epoch {epoch['epoch']}/{epoch['epochs']}"
            self.progress.update(
                self.task, completed=self.done + self.fraction, description=current
            )
        else:
            self.progress.console.print(text, markup=False, highlight=False)

    def cell_done(self) -> None:
        """A cell finished (whatever its status)."""
        self.done, self.fraction = self.done + 1, 0.0
        if self.progress is not None:
            self.progress.update(self.task, completed=self.done)

    def stop(self) -> None:
        """Remove the live display (the finished-cell lines stay)."""
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    @hookimpl
    def harness_run_started(self, run_id: str, suite: str, cells: list[dict[str, Any]]) -> None:
        """Start the display with the run's cell count."""
        self.start(len(cells))

    @hookimpl
    def harness_cell_finished(self, result: dict[str, Any]) -> None:
        """Count the finished cell."""
        self.cell_done()

    @hookimpl
    def harness_run_finished(self, run_id: str, status: str) -> None:
        """Close the display."""
        self.stop()


@contextmanager
def showing(pm: Any, quiet: bool = False, stream: TextIO | None = None) -> Iterator[Display]:
    """Make a :class:`Display` current and follow the run through ``pm``'s hooks."""
    global _current
    display = Display(choose_mode(quiet, stream), stream)
    previous, _current = _current, display
    pm.register(display)
    try:
        yield display
    finally:
        display.stop()
        pm.unregister(display)
        _current = previous
