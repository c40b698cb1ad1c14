"""The runner's side of a worker process: spawn, talk JSON lines, watch for death and timeouts.

Each worker is the leader of its own session (``start_new_session=True``), so a Ctrl-C in the
terminal (SIGINT to the foreground process group) reaches only the runner, which then kills
the worker's whole process group: nothing is left behind.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from typing import IO, Any

STDERR_TAIL = 40
# ``python -m`` puts the current folder first on sys.path. Started in a checkout, its harness/
# (which has no harness/backends: they live in backends/) would shadow the installed package
# and the built-in backends would vanish. The bootstrap drops that entry, then runs the module
# as ``-m`` would (Python 3.11's ``-P`` does the same, but 3.10 lacks it).
_SAFE_MAIN = (
    "import runpy, sys\n"
    "if sys.path[:1] == ['']: del sys.path[0]\n"
    "runpy.run_module(sys.argv.pop(1), run_name='__main__', alter_sys=True)"
)


def module_command(module: str, *args: str) -> list[str]:
    """``python -m MODULE ARGS`` without the current folder on ``sys.path``."""
    return [sys.executable, "-c", _SAFE_MAIN, module, *args]


class WorkerDied(Exception):
    """The worker exited (crash, kill, OOM) or timed out before answering."""

    def __init__(self, reason: str, tail: str) -> None:
        super().__init__(reason)
        self.reason, self.tail = reason, tail


def exit_reason(code: int) -> str:
    """``worker exited with status N`` or ``worker killed by signal N NAME``."""
    if code >= 0:
        return f"worker exited with status {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = ""
    return f"worker killed by signal {-code} {name}".rstrip()


class WorkerProcess:
    """One ``python -m harness.worker`` subprocess for a backend on a device."""

    def __init__(self, backend: str, device: str, threads: int, env: dict[str, str]) -> None:
        self.backend, self.device = backend, device
        self.hello: dict[str, Any] = {}
        full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            module_command("harness.worker", backend, device, str(threads)),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full_env,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        self.messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.stderr: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL)
        threading.Thread(target=self._read_proto, args=(self.proc.stdout,), daemon=True).start()
        self._err_thread = threading.Thread(
            target=self._read_err, args=(self.proc.stderr,), daemon=True
        )
        self._err_thread.start()

    @property
    def pid(self) -> int:
        """The worker's process id (also its process group and session id)."""
        return self.proc.pid

    def _read_proto(self, stream: IO[str]) -> None:
        with stream:
            for line in stream:
                try:
                    self.messages.put(json.loads(line))
                except json.JSONDecodeError:
                    self.stderr.append(line.rstrip())
        self.messages.put(None)

    def _read_err(self, stream: IO[str]) -> None:
        with stream:
            for line in stream:
                self.stderr.append(line.rstrip())

    def begin_cell(self) -> None:
        """Forget stderr lines of earlier cells, so a failure shows only its own."""
        self.stderr.clear()

    def tail(self) -> str:
        """The last lines the worker wrote to stderr."""
        self._err_thread.join(timeout=2)
        return "\n".join(self.stderr)

    def _death(self, timeout: float | None) -> WorkerDied:
        if timeout is not None:
            self.kill()
            return WorkerDied(f"timed out after {timeout:g} s (worker killed)", self.tail())
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # closed its stdout but lives on: make sure it is gone
            self.kill()
            return WorkerDied("worker closed its output and was killed", self.tail())
        return WorkerDied(exit_reason(code), self.tail())

    def receive(self, deadline: float | None, timeout: float | None = None) -> dict[str, Any]:
        """Next message; raises :class:`WorkerDied` on exit or when ``deadline`` passes.

        ``timeout`` is the number of seconds ``deadline`` stands for, for the message.
        """
        while True:
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                raise self._death(timeout=timeout or 0.0)
            try:
                message = self.messages.get(timeout=1.0 if wait is None else min(wait, 1.0))
            except queue.Empty:
                continue
            if message is None:
                raise self._death(timeout=None)
            return message

    def send(self, message: dict[str, Any]) -> None:
        """Write one JSON line to the worker (a dead worker surfaces at the next receive)."""
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass

    def kill(self) -> None:
        """Kill the worker's whole process group now, reap it and close its stdin."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL cannot be ignored
            pass
        self._close_stdin()

    def _close_stdin(self) -> None:
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
        except OSError:  # a dead worker's pipe: flushing what is left fails
            pass

    def close(self) -> None:
        """Ask the worker to finish, then make sure it and its children are gone."""
        self.send({"quit": True})
        self._close_stdin()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self.kill()
