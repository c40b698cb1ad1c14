"""SIGINT, SIGTERM or SIGHUP during a run: stop cleanly, never halfway through writing a cell.

While a :class:`SignalGuard` is active, each of these signals raises :class:`Interrupted` (a
``KeyboardInterrupt`` that knows its signal), so the runner kills its workers, the run is
marked ``interrupted`` and ``harness`` exits with 128 + the signal number, the shell's
convention: 130 for SIGINT (Ctrl-C), 143 for SIGTERM, 129 for SIGHUP (terminal closed). A
signal that arrives while a finished cell is being stored is held and raised right after the
write, and once stopping has begun further signals are held too, so a second Ctrl-C cannot
break the clean-up.
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
            for signum in SIGNALS:
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
