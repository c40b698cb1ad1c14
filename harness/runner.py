"""The cell runner: one cell at a time in a worker subprocess, its result as a store record.

One worker subprocess per (backend, device), kept for the cells that follow; a worker that dies
fails only its cell and is replaced, and a worker whose cell failed is retired (its framework's
state after an exception or a MemoryError is not trusted). Frameworks are never imported here.
Executors (:mod:`harness.executors`) decide where a :class:`Runner` lives and store its records:
the local executor keeps one in the ``harness`` process, the Ray executor one in each Ray task.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.environment import thread_env
from harness.plugins import Plugins
from harness.progress import emit
from harness.specs import CellSpec
from harness.workerproc import WorkerDied, WorkerProcess

DONE = ("ok", "diverged")
STARTUP_TIMEOUT_S = 600.0
Printer = Callable[[str], None]


def say(text: str) -> None:
    """Print a progress line now (flushed, so a pipe or ``tee`` shows it as it happens), or
    hand it to the run's live display (:mod:`harness.progress`)."""
    emit(text)


def quiet(text: str) -> None:
    """A :data:`Printer` that prints nothing (a runner inside a Ray task)."""


@dataclass
class Runner:
    """Runs cells in worker subprocesses; ``cell_timeout`` (seconds) kills a hung worker."""

    plugins: Plugins
    threads: int
    cell_timeout: float | None = None
    echo: Printer = say
    workers: dict[tuple[str, str], WorkerProcess] = field(default_factory=dict)

    def _worker(self, backend: str, device: str) -> WorkerProcess:
        key = (backend, device)
        if key not in self.workers:
            info = self.plugins.backends.get(backend)
            env = {**thread_env(self.threads), **info.worker_env}
            worker = WorkerProcess(backend, device, self.threads, env)
            self.workers[key] = worker
            try:
                worker.hello = worker.receive(time.monotonic() + STARTUP_TIMEOUT_S)
            except WorkerDied:
                self._drop(backend, device)
                raise
        return self.workers[key]

    def _drop(self, backend: str, device: str, kill: bool = True) -> None:
        worker = self.workers.pop((backend, device), None)
        if worker is not None:
            worker.kill() if kill else worker.close()

    def _skip_reason(self, cell: CellSpec, worker: WorkerProcess) -> str:
        if worker.hello and cell.device not in worker.hello.get("devices", []):
            return f"no {cell.device} visible to backend '{cell.backend}' here"
        return ""

    def _execute(self, cell: CellSpec, label: str) -> dict[str, Any]:
        hint = self.plugins.backends.get(cell.backend).install_hint()
        if hint:
            return {"status": "skipped", "reason": hint}
        try:
            worker = self._worker(cell.backend, cell.device)
        except WorkerDied as died:
            return {
                "status": "failed",
                "reason": f"worker did not start: {died.reason}",
                "stderr_tail": died.tail,
            }
        skip = self._skip_reason(cell, worker)
        if skip:
            return {"status": "skipped", "reason": skip}
        return {**_hello_facts(worker), **self._converse(worker, cell, label)}

    def _converse(self, worker: WorkerProcess, cell: CellSpec, label: str) -> dict[str, Any]:
        """Send the cell, relay its epochs, return its result (or why the worker died)."""
        worker.begin_cell()
        worker.send({"cell": cell.to_dict()})
        timeout = self.cell_timeout
        deadline = time.monotonic() + timeout if timeout else None
        try:
            while True:
                message = worker.receive(deadline, timeout)
                if message.get("type") == "epoch":
                    self._echo_epoch(label, cell, message["metrics"])
                elif message.get("type") == "result":
                    result = dict(message["result"])
                    if result.get("status") == "failed":
                        self._drop(cell.backend, cell.device, kill=False)
                        result["stderr_tail"] = result.get("stderr_tail") or worker.tail()
                    return result
        except WorkerDied as died:
            self._drop(cell.backend, cell.device)
            return {"status": "failed", "reason": died.reason, "stderr_tail": died.tail}

    def _echo_epoch(self, label: str, cell: CellSpec, m: dict[str, Any]) -> None:
        loss = m.get("train_loss")
        loss_text = f"{loss:.4f}" if isinstance(loss, (int, float)) else str(loss or "nan")
        self.echo(
            f"{label} {cell.cell_id}  epoch {m['epoch']}/{cell.train.epochs}  "
            f"train_loss {loss_text}  val_acc {m.get('val_acc') or 0:.4f}  "
            f"{m['time_s']:.2f} s"
        )

    def run_cell(self, cell: CellSpec, label: str = "") -> dict[str, Any]:
        """Run one cell in its backend's worker; its store record (never raises for the cell)."""
        started = time.time()
        return make_record(cell, self._execute(cell, label), started)

    def keep_only(self, backend: str, device: str) -> None:
        """Close every idle worker but ``(backend, device)``'s: at most one framework in memory."""
        for key in [k for k in self.workers if k != (backend, device)]:
            self._drop(*key, kill=False)

    def shutdown(self, kill: bool = False) -> None:
        """Stop every worker: politely when idle, by SIGKILL when ``kill`` (interruption)."""
        for backend, device in list(self.workers):
            self._drop(backend, device, kill=kill)


def make_record(cell: CellSpec, result: dict[str, Any], started: float) -> dict[str, Any]:
    """The store row of a finished cell: ``result`` minus status/reason/stderr tail."""
    result.setdefault("started", started)
    return {
        "cell_id": cell.cell_id,
        "backend": cell.backend,
        "device": cell.device,
        "variant": cell.variant,
        "status": result.pop("status", "failed"),
        "spec": cell.to_dict(),
        "result": result,
        "reason": result.pop("reason", ""),
        "stderr_tail": result.pop("stderr_tail", ""),
        "finished": time.time(),
    }


def _hello_facts(worker: WorkerProcess) -> dict[str, Any]:
    """What the worker said about itself, stored with each of its cells."""
    hello = worker.hello
    return {
        "versions": hello.get("versions", {}),
        "worker_env": hello.get("env", {}),
        "worker_pid": worker.pid,
    }


def pending(cells: list[CellSpec], stored: list[dict[str, Any]]) -> list[CellSpec]:
    """Cells with no finished (ok/diverged) row in the store: what ``--resume`` runs."""
    done = {c["cell_id"] for c in stored if c["status"] in DONE}
    return [c for c in cells if c.cell_id not in done]
