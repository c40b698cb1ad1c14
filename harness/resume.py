"""``harness run --resume RUN``: finish an interrupted run with exactly its stored settings.

Only cells without an ok or diverged row run (missing, failed, skipped); each replaces its old
row, so the store ends with every cell once. What the cells compute comes from the run's stored
settings; :class:`ResumeOptions` holds only what may differ (threads, cell timeout, report
folder, store, executor and Ray address). Left out, the executor is the run's own (a run
started with ``--executor ray --ray-address ADDR`` resumes there). The command line refuses an
option that would change a stored setting (:mod:`harness.cli.resume_check`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness import spill
from harness.executors import running
from harness.plugins import Plugins
from harness.runner import pending
from harness.runs import execute, executor_for, preflight, store_path, with_artifacts
from harness.specs import CellSpec
from harness.store import Store
from harness.suite import RunOptions, expand


@dataclass(frozen=True)
class ResumeOptions:
    """How to finish stored run ``run_id``: nothing here changes what a cell computes (that
    comes from the run's stored settings, :meth:`harness.suite.RunOptions.from_settings`).

    ``threads`` left out is the run's; ``executor``/``ray_address`` left out are the run's
    own; ``out`` is only checked to be writable here (the command writes the report)."""

    run_id: str
    store: str | None = None
    out: str | None = None
    threads: int | None = None
    executor: str | None = None
    ray_address: str | None = None
    cell_timeout: float | None = None
    dry_run: bool = False


Check = Callable[[dict[str, Any]], None]


def _accept(settings: dict[str, Any]) -> None:
    """The default check: any stored settings may be resumed."""
    return None


def resume(
    options: ResumeOptions, plugins: Plugins, check: Check = _accept
) -> tuple[Store, str] | None:
    """Run only the missing or failed cells of a stored run, with its stored settings; return
    the store and the run's id (the command then writes the report), or None after
    ``dry_run`` (which lists the cells left and writes nothing). ``check(settings)`` runs first
    on the run's stored settings (the command line refuses options that would change them).

    A run still marked ``running`` whose process lives is refused; cells kept beside the store
    by a write that failed (:mod:`harness.spill`) are stored first and not run again."""
    store = Store(store_path(options.store), must_exist=True)
    run = store.run(options.run_id)
    settings, run_id = run["settings"], run["run_id"]
    check(settings)
    suite = plugins.suites.get(settings["suite"])
    opts = with_artifacts(RunOptions.from_settings(settings), store.path, run_id)
    cells = expand(suite, opts, run_id)
    preflight(opts, cells, options.out)
    threads = options.threads or run["env"].get("threads") or 1
    executor = executor_for(
        plugins,
        threads,
        options.executor,
        options.ray_address,
        options.cell_timeout,
        settings.get("executor"),
    )
    if options.dry_run:
        _dry_run(store, run_id, cells, executor.name)
        return None
    store.claim_run(run_id)
    store.recover(run_id)
    todo = pending(cells, store.cells(run_id))
    print(f"harness: resuming {run_id}: {len(todo)} of {len(cells)} cells left", flush=True)
    with running(executor):
        execute(plugins, store, suite.name, run_id, todo, executor, options.store)
    return store, run_id


def _dry_run(store: Store, run_id: str, cells: list[CellSpec], executor: str) -> None:
    """List the cells a resume would run (counting those kept in a spill file as done)."""
    path = spill.spill_path(store.path, run_id)
    kept = spill.read(path)["cells"] if path.exists() else []
    todo = pending(cells, [*store.cells(run_id), *kept])
    print(
        f"harness: dry run of resuming {run_id}: {len(todo)} of {len(cells)} cells left "
        f"with the {executor} executor; nothing run or stored"
    )
    for cell in todo:
        print(f"  {cell.cell_id}")
    return None
