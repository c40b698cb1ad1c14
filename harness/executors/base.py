"""The executor interface and the driver's end of it: each finished cell stored, announced.

An :class:`Executor` runs cells somewhere and hands each finished cell's record to a
:data:`Finish` callback in the ``harness`` process; :class:`Recorder` is that callback in a run
(one store writer, signals held while a row is written, the ``harness_cell_finished`` hook and
a progress line).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from harness.interrupt import SignalGuard
from harness.plugins import Plugins
from harness.runner import Printer, say
from harness.specs import CellSpec
from harness.store import Store

Finish = Callable[[dict[str, Any]], None]
"""Called with each finished cell's store record, in the ``harness`` process."""


@dataclass(frozen=True)
class ExecutorOptions:
    """What every executor is given: ``threads`` per worker, ``cell_timeout`` in seconds,
    ``address`` of a cluster where the executor has one (``""``: its default)."""

    plugins: Plugins
    threads: int
    cell_timeout: float | None = None
    address: str = ""
    echo: Printer = say


class Executor(ABC):
    """Where the cells of a run execute.

    :meth:`run` calls ``finish(record)`` for every cell, in the ``harness`` process, as each one
    ends (in any order). On any exception, :class:`~harness.interrupt.Interrupted` included, it
    stops what is still running, hands over the records of cells that had already finished,
    and re-raises.
    """

    name: ClassVar[str]

    def __init__(self, options: ExecutorOptions) -> None:
        self.options = options

    def start(self) -> None:
        """Acquire what the executor needs (a Ray connection...); errors are HarnessErrors."""
        return None  # the local executor needs nothing

    @abstractmethod
    def run(self, cells: list[CellSpec], finish: Finish) -> None:
        """Run ``cells``, calling ``finish`` with each one's record as it ends."""

    def close(self) -> None:
        """Release what :meth:`start` acquired."""
        return None

    def settings(self) -> dict[str, Any]:
        """What the run's settings record: the executor's name (and where it ran the cells)."""
        return {"name": self.name}

    def describe(self) -> dict[str, Any]:
        """What the run's environment records about the executor (and the machines it uses)."""
        return {"name": self.name}


@dataclass
class Recorder:
    """The :data:`Finish` of a run: store the record, call the hook, print a progress line."""

    store: Store
    plugins: Plugins
    run_id: str
    total: int
    guard: SignalGuard
    executor: str
    echo: Printer = say
    done: int = 0

    def __call__(self, record: dict[str, Any]) -> None:
        record["result"].setdefault("executor", self.executor)
        with self.guard.deferred():
            self.store.put_cell(self.run_id, record)
            self.plugins.pm.hook.harness_cell_finished(result=record)
        self.done += 1
        self.echo(f"[{self.done}/{self.total}] {progress_line(record)}")


def progress_line(record: dict[str, Any]) -> str:
    """``CELL  STATUS  reason`` (and the node, for a cell that ran on a Ray node)."""
    where = record["result"].get("diverged_at")
    if record["status"] == "diverged" and where:
        why = f"  loss not finite at epoch {where['epoch']}, step {where['step']}"
    else:
        why = f"  {record['reason']}" if record["reason"] else ""
    node = record["result"].get("node", {}).get("hostname")
    return f"{record['cell_id']}  {record['status']}{why}" + (f"  (on {node})" if node else "")
