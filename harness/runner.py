"""The runner: cells to workers, results to the store the moment each cell finishes.

One worker subprocess per (backend, device), kept for the cells that follow; a worker that dies
fails only its cell and is replaced, and a worker whose cell failed is retired (its framework's
state after an exception or a MemoryError is not trusted). Frameworks are never imported here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.environment import thread_env
from harness.interrupt import SignalGuard
from harness.plugins import Plugins
from harness.specs import CellSpec
from harness.store import Store
from harness.workerproc import WorkerDied, WorkerProcess

DONE = ("ok", "diverged")
STARTUP_TIMEOUT_S = 600.0
Printer = Callable[[str], None]


def say(text: str) -> None:
    """Print a progress line now (flushed, so a pipe or ``tee`` shows it as it happens)."""
    print(text, flush=True)


@dataclass
class Runner:
    """Runs cells of one run; ``cell_timeout`` (seconds) kills a hung worker."""

    plugins: Plugins
    store: Store
    threads: int
    cell_timeout: float | None = None
    echo: Printer = say
    guard: SignalGuard = field(default_factory=SignalGuard)
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

    def run_cells(self, run_id: str, cells: list[CellSpec]) -> None:
        """Run ``cells`` in order, storing each as it finishes; workers closed at the end.

        On any exception (an :class:`~harness.interrupt.Interrupted` signal included) every
        worker is killed before it propagates; a cell's row is never half written.
        """
        try:
            for i, cell in enumerate(cells, 1):
                label = f"[{i}/{len(cells)}]"
                started = time.time()
                record = self._record(cell, self._execute(cell, label), started)
                with self.guard.deferred():
                    self.store.put_cell(run_id, record)
                    self.plugins.pm.hook.harness_cell_finished(result=record)
                self.echo(f"{label} {cell.cell_id}  {record['status']}{_why(record)}")
        except BaseException:
            self.shutdown(kill=True)
            raise
        self.shutdown()

    def _record(self, cell: CellSpec, result: dict[str, Any], started: float) -> dict[str, Any]:
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

    def shutdown(self, kill: bool = False) -> None:
        """Stop every worker: politely when idle, by SIGKILL when ``kill`` (interruption)."""
        for backend, device in list(self.workers):
            self._drop(backend, device, kill=kill)


def _hello_facts(worker: WorkerProcess) -> dict[str, Any]:
    """What the worker said about itself, stored with each of its cells."""
    hello = worker.hello
    return {
        "versions": hello.get("versions", {}),
        "worker_env": hello.get("env", {}),
        "worker_pid": worker.pid,
    }


def _why(record: dict[str, Any]) -> str:
    """The reason shown after a cell's status on the progress line."""
    where = record["result"].get("diverged_at")
    if record["status"] == "diverged" and where:
        return f"  loss not finite at epoch {where['epoch']}, step {where['step']}"
    return f"  {record['reason']}" if record["reason"] else ""


def pending(cells: list[CellSpec], stored: list[dict[str, Any]]) -> list[CellSpec]:
    """Cells with no finished (ok/diverged) row in the store: what ``--resume`` runs."""
    done = {c["cell_id"] for c in stored if c["status"] in DONE}
    return [c for c in cells if c.cell_id not in done]
