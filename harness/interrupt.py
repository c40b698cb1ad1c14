"""SIGINT, SIGTERM or SIGHUP during a run: stop cleanly, never halfway through writing a cell.

While a :class:`SignalGuard` is active, each of these signals raises :class:`Interrupted` (a
``KeyboardInterrupt`` that knows its signal), so the runner kills its workers, the run is
marked ``interrupted`` and ``harness`` exits with 128 + the signal number, the shell's
convention: 130 for SIGINT (Ctrl-C), 143 for SIGTERM, 129 for SIGHUP (terminal closed). A
signal that arrives while a finished cell is being stored is held and raised right after the
write, and once stopping has begun further signals are held too, so a second Ctrl-C cannot
break the clean-up.

Outside a run the command is covered too: :func:`handled` (entered first thing in
``harness.cli.main``) holds a signal that arrives while the command line is parsed and raises
it as :class:`Interrupted` once the command starts (:meth:`ProcessSignals.arm`), and raises any
later one (writing a report, loading a dataset) the same way, so every signal ends in one line
and its exit code, never a ``KeyboardInterrupt`` traceback. A signal ignored when the process
started (``nohup``, a background job) stays ignored.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived during a run; ``exit_code`` is 128 + the signal number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The command's exit status for this signal (130 SIGINT, 143 SIGTERM)."""
        return 128 + self.signum


def _catchable() -> list[int]:
    """The signals to handle: :data:`SIGNALS` less those ignored when we got them (``nohup``
    ignores SIGHUP, a shell's background job SIGINT): those stay ignored."""
    return [s for s in SIGNALS if signal.getsignal(s) is not signal.SIG_IGN]


class ProcessSignals:
    """The ``harness`` process's own handler for the length of a command (main thread only).

    Until :meth:`arm`, a signal is only remembered; after it, the first signal raises
    :class:`Interrupted` and later ones are ignored (the command is already stopping).
    :attr:`seen` is the first signal that arrived, so code that catches exceptions broadly (a
    dataset loader, a library's import) can tell an interruption from a failure.
    """

    def __init__(self) -> None:
        self.armed = False
        self.seen: int | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        """Take over the signals (from the main thread; elsewhere nothing happens)."""
        if threading.current_thread() is threading.main_thread():
            for signum in _catchable():
                self._previous[signum] = signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.seen is not None:
            return
        self.seen = signum
        if self.armed:
            raise Interrupted(signum)

    def arm(self) -> None:
        """From now on a signal raises; one that arrived before is raised now."""
        self.armed = True
        if self.seen is not None:
            raise Interrupted(self.seen)

    def restore(self) -> None:
        """Give the signals back to the handlers that were there before."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


PROCESS = ProcessSignals()
"""The handler :func:`handled` installs; :func:`interrupted` asks it."""


@contextmanager
def handled() -> Iterator[ProcessSignals]:
    """Install :data:`PROCESS` for the block (a command), restore the old handlers after."""
    PROCESS.armed, PROCESS.seen = False, None
    PROCESS.install()
    try:
        yield PROCESS
    finally:
        PROCESS.restore()


def interrupted(exc: BaseException) -> BaseException:
    """``exc``, or the :class:`Interrupted` of a signal that arrived while it was raised: a
    library that catches everything may turn the signal's exception into its own."""
    if PROCESS.seen is not None and not isinstance(exc, Interrupted):
        return Interrupted(PROCESS.seen)
    return exc


class SignalGuard:
    """Turns SIGINT/SIGTERM/SIGHUP into :class:`Interrupted` while entered (main thread only)."""

    def __init__(self) -> None:
        self.holding = 0
        self.stopping = False
        self.pending: int | None = None
        self.raised: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> SignalGuard:
        if threading.current_thread() is threading.main_thread():
            for signum in _catchable():
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.holding or self.stopping:
            self.pending = self.pending or signum
            return
        self.stopping = True
        self.raised = signum
        raise Interrupted(signum)

    def stop(self) -> None:
        """Hold every later signal: clean-up has begun (also after a plain KeyboardInterrupt)."""
        self.stopping = True

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Hold signals inside the block; one that arrived is raised when it ends."""
        self.holding += 1
        try:
            yield
        finally:
            self.holding -= 1
        if not self.holding and self.pending and not self.stopping:
            signum, self.pending = self.pending, None
            self.stopping = True
            self.raised = signum
            raise Interrupted(signum)

    def restore(self, exc: BaseException) -> BaseException:
        """``exc``, or the :class:`Interrupted` this guard raised if ``exc`` is a plain
        ``KeyboardInterrupt`` that stands for it: a library waiting in C code (Ray's
        ``ray.wait``) may catch the signal handler's exception and raise its own."""
        if self.raised is not None and type(exc) is KeyboardInterrupt:
            return Interrupted(self.raised)
        return exc
