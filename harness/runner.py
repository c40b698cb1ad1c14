"""The runner: cells to workers, results to the store the moment each cell finishes.

One worker subprocess per (backend, device), kept for the cells that follow; a worker that dies
fails only its cell and is replaced. Frameworks are never imported in this process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.environment import thread_env
from harness.plugins import Plugins
from harness.specs import CellSpec
from harness.store import Store
from harness.workerproc import WorkerDied, WorkerProcess

DONE = ("ok", "diverged")
Printer = Callable[[str], None]


@dataclass
class Runner:
    """Runs cells of one run; ``cell_timeout`` (seconds) kills a hung worker."""

    plugins: Plugins
    store: Store
    threads: int
    cell_timeout: float | None = None
    echo: Printer = print
    workers: dict[tuple[str, str], WorkerProcess] = field(default_factory=dict)
    hellos: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    worker_failures: dict[tuple[str, str], str] = field(default_factory=dict)

    def _worker(self, backend: str, device: str) -> WorkerProcess:
        key = (backend, device)
        if key not in self.workers:
            info = self.plugins.backends.get(backend)
            env = {**thread_env(self.threads), **info.worker_env}
            worker = WorkerProcess(backend, device, self.threads, env)
            self.workers[key] = worker
            deadline = time.monotonic() + 600
            try:
                self.hellos[key] = worker.receive(deadline)
            except WorkerDied:
                del self.workers[key]
                raise
        return self.workers[key]

    def _drop(self, backend: str, device: str) -> None:
        worker = self.workers.pop((backend, device), None)
        if worker is not None:
            worker.kill()

    def _skip_reason(self, cell: CellSpec) -> str:
        hello = self.hellos.get((cell.backend, cell.device))
        if hello and cell.device not in hello["devices"]:
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
        skip = self._skip_reason(cell)
        if skip:
            return {"status": "skipped", "reason": skip}
        worker.send({"cell": cell.to_dict()})
        deadline = time.monotonic() + self.cell_timeout if self.cell_timeout else None
        try:
            while True:
                message = worker.receive(deadline)
                if message.get("type") == "epoch":
                    self._echo_epoch(label, cell, message["metrics"])
                elif message.get("type") == "result":
                    return dict(message["result"])
        except WorkerDied as died:
            self._drop(cell.backend, cell.device)
            return {"status": "failed", "reason": died.reason, "stderr_tail": died.tail}

    def _echo_epoch(self, label: str, cell: CellSpec, m: dict[str, Any]) -> None:
        loss = m.get("train_loss")
        loss_text = f"{loss:.4f}" if isinstance(loss, float) else str(loss)
        self.echo(
            f"{label} {cell.cell_id}  epoch {m['epoch']}/{cell.train.epochs}  "
            f"train_loss {loss_text}  val_acc {m.get('val_acc') or 0:.4f}  "
            f"{m['time_s']:.2f} s"
        )

    def run_cells(self, run_id: str, cells: list[CellSpec]) -> None:
        """Run ``cells`` in order, storing each as it finishes; workers closed at the end."""
        try:
            for i, cell in enumerate(cells, 1):
                label = f"[{i}/{len(cells)}]"
                started = time.time()
                result = self._execute(cell, label)
                record = self._record(cell, result, started)
                self.store.put_cell(run_id, record)
                self.plugins.pm.hook.harness_cell_finished(result=record)
                reason = f"  {record['reason']}" if record["reason"] else ""
                self.echo(f"{label} {cell.cell_id}  {record['status']}{reason}")
        except BaseException:
            self.shutdown(kill=True)
            raise
        self.shutdown()

    def _record(self, cell: CellSpec, result: dict[str, Any], started: float) -> dict[str, Any]:
        hello = self.hellos.get((cell.backend, cell.device), {})
        result.setdefault("versions", hello.get("versions", {}))
        result.setdefault("worker_env", hello.get("env", {}))
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
        for key in list(self.workers):
            worker = self.workers.pop(key)
            if kill:
                worker.kill()
            else:
                worker.close()


def pending(cells: list[CellSpec], stored: list[dict[str, Any]]) -> list[CellSpec]:
    """Cells with no finished (ok/diverged) row in the store: what ``--resume`` runs."""
    done = {c["cell_id"] for c in stored if c["status"] in DONE}
    return [c for c in cells if c.cell_id not in done]
