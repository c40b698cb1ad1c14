"""The runner's side of a worker process: spawn, talk JSON lines, watch for death and timeouts."""

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


class WorkerDied(Exception):
    """The worker exited (crash, kill, OOM) or timed out before answering."""

    def __init__(self, reason: str, tail: str) -> None:
        super().__init__(reason)
        self.reason, self.tail = reason, tail


class WorkerProcess:
    """One ``python -m harness.worker`` subprocess for a backend on a device."""

    def __init__(self, backend: str, device: str, threads: int, env: dict[str, str]) -> None:
        self.backend, self.device = backend, device
        full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "harness.worker", backend, device, str(threads)],
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

    def _read_proto(self, stream: IO[str]) -> None:
        for line in stream:
            try:
                self.messages.put(json.loads(line))
            except json.JSONDecodeError:
                self.stderr.append(line.rstrip())
        self.messages.put(None)

    def _read_err(self, stream: IO[str]) -> None:
        for line in stream:
            self.stderr.append(line.rstrip())

    def tail(self) -> str:
        """The last lines the worker wrote to stderr."""
        self._err_thread.join(timeout=2)
        return "\n".join(self.stderr)

    def _death(self, timeout: bool) -> WorkerDied:
        if timeout:
            self.kill()
            return WorkerDied("timed out (worker killed)", self.tail())
        code = self.proc.wait(timeout=10)
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else ""
            reason = f"worker killed by signal {-code} {name}".rstrip()
        else:
            reason = f"worker exited with status {code}"
        return WorkerDied(reason, self.tail())

    def receive(self, deadline: float | None) -> dict[str, Any]:
        """Next message; raises :class:`WorkerDied` on exit or when ``deadline`` passes."""
        while True:
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                raise self._death(timeout=True)
            try:
                message = self.messages.get(timeout=None if wait is None else min(wait, 1.0))
            except queue.Empty:
                continue
            if message is None:
                raise self._death(timeout=False)
            return message

    def send(self, message: dict[str, Any]) -> None:
        """Write one JSON line to the worker (a dead worker surfaces at the next receive)."""
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def kill(self) -> None:
        """Kill the worker's whole process group now."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=10)

    def close(self) -> None:
        """Ask the worker to finish, then make sure it is gone."""
        self.send({"quit": True})
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except (subprocess.TimeoutExpired, OSError):
            self.kill()
