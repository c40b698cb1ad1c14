"""Who owns a running run: host, pid and start time of its process, and a heartbeat.

``harness run`` records its process as the owner of the run it creates (or resumes) and renews
a heartbeat while it runs. ``--resume`` of a run still marked ``running`` asks whether that
owner lives: on this host by its pid (and, where /proc tells, that the pid is still the process
started then, not a later one given the same number); on another host by a heartbeat younger
than :data:`STALE_S`. A live run is refused; a dead one (SIGKILLed, its machine rebooted) may be
resumed.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

HEARTBEAT_S = 10.0
STALE_S = 6 * HEARTBEAT_S
"""A run on another host whose heartbeat is older than this is taken as dead."""


def start_marker(pid: int) -> str:
    """When process ``pid`` started (clock ticks after boot, from /proc); "" where unknown."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def this_process() -> tuple[str, int, str]:
    """This process as a run's owner: host, pid, start marker."""
    return socket.gethostname(), os.getpid(), start_marker(os.getpid())


def pid_alive(pid: int, marker: str | None) -> bool:
    """True while ``pid`` exists and (where recorded) is the process that was started then."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    if marker:
        now = start_marker(pid)
        return not now or now == marker
    return True


def refuse_live(run: dict[str, Any], path: Path) -> None:
    """Raise :class:`HarnessError` when the owner of the ``running`` run is still alive."""
    host, pid = run.get("owner_host"), run.get("owner_pid")
    if not host or not pid:
        return  # stored before owners were recorded: nothing says it is alive
    age = time.time() - float(run.get("heartbeat") or 0)
    if host == socket.gethostname():
        live = pid_alive(int(pid), run.get("owner_start"))
    else:
        live = age < STALE_S
    if live:
        raise HarnessError(
            f"run {run['run_id']} in {path} is still running (pid {pid} on {host}, heartbeat "
            f"{age:.0f} s ago); wait for it, or stop that process, then resume"
        )


class Heartbeat(threading.Thread):
    """Calls ``beat`` every :data:`HEARTBEAT_S` seconds until stopped (a daemon thread); a
    failed beat is skipped: the run's own writes report a store that cannot be written."""

    def __init__(self, run_id: str, beat: Callable[[], None]) -> None:
        super().__init__(name=f"heartbeat-{run_id}", daemon=True)
        self.beat = beat
        self.done = threading.Event()

    def run(self) -> None:
        """Beat until stopped."""
        while not self.done.wait(HEARTBEAT_S):
            try:
                self.beat()
            except sqlite3.Error:
                continue

    def stop(self) -> None:
        """End the thread (without waiting for a renewal in progress)."""
        self.done.set()
