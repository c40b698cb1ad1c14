"""The ``local`` executor: the cells one after another in worker subprocesses of this process."""

from __future__ import annotations

from harness.executors.base import Executor, ExecutorOptions, Finish
from harness.runner import Runner
from harness.specs import CellSpec


class LocalExecutor(Executor):
    """One :class:`~harness.runner.Runner` here: a warm worker per (backend, device)."""

    name = "local"

    def __init__(self, options: ExecutorOptions) -> None:
        super().__init__(options)
        self.runner = Runner(options.plugins, options.threads, options.cell_timeout, options.echo)

    def run(self, cells: list[CellSpec], finish: Finish) -> None:
        """Run ``cells`` in order; on any exception every worker is killed before it propagates."""
        try:
            for i, cell in enumerate(cells, 1):
                finish(self.runner.run_cell(cell, f"[{i}/{len(cells)}]"))
        except BaseException:
            self.runner.shutdown(kill=True)
            raise
        self.runner.shutdown()
