"""``harness run --resume RUN``: finish an interrupted run with exactly its stored settings.

Only cells without an ok or diverged row run (missing, failed, skipped); each replaces its old
row, so the store ends with every cell once. An option that would change what the cells compute
(suite, backends, devices, dataset, epochs, seeds, batch size, lr, init...) given with a value
other than the run's is refused; ``--threads``, ``--cell-timeout``, ``--out``, ``--store``,
``--no-report``, ``--executor`` and ``--ray-address`` may differ. Left out, the executor is the
run's own (a run started with ``--executor ray --ray-address ADDR`` resumes there).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from harness import spill
from harness.errors import HarnessError
from harness.executors import running
from harness.plugins import Plugins
from harness.runner import pending
from harness.runs import (
    absolute_dir,
    execute,
    executor_for,
    pick_backends,
    pick_devices,
    preflight,
    store_path,
    with_artifacts,
)
from harness.specs import CellSpec
from harness.store import Store
from harness.suite import RunOptions, expand


def stored_options(settings: dict[str, Any]) -> dict[str, Any]:
    """The run's settings under the names of the command-line options that set them."""
    data = settings["data"]
    return {
        "suite": settings["suite"],
        "backend": list(settings["backends"]),
        "device": list(settings["devices"]),
        "dataset": data["name"],
        "data_dir": data["data_dir"],
        "standardize": data["standardize"],
        "limit": data["limit"] or None,
        "quick": settings["quick"],
        **{k: settings[k] for k in ("epochs", "seeds", "batch_size", "lr", "init")},
    }


def _given(args: argparse.Namespace, plugins: Plugins) -> dict[str, Callable[[], Any]]:
    """How to compare a given option with the stored value (names resolved like a run)."""
    return {
        "backend": lambda: pick_backends(plugins, args.backend)[0],
        "device": lambda: list(pick_devices(args.device)),
        "data_dir": lambda: absolute_dir(args.data_dir),
    }


def refuse_changes(args: argparse.Namespace, plugins: Plugins, settings: dict[str, Any]) -> None:
    """Raise :class:`HarnessError` for the first given option that differs from the run's."""
    stored = stored_options(settings)
    resolve = _given(args, plugins)
    for key in sorted(set(getattr(args, "given", ())) & stored.keys()):
        value = resolve[key]() if key in resolve else getattr(args, key)
        if value != stored[key]:
            shown = "the suite's default" if stored[key] is None else repr(stored[key])
            raise HarnessError(
                f"--resume {args.resume}: --{key.replace('_', '-')} {getattr(args, key)} "
                f"differs from the run's setting ({shown}); leave it out to resume the run"
            )


def resume(args: argparse.Namespace, plugins: Plugins) -> tuple[Store, str] | None:
    """Run only the missing or failed cells of a stored run, with its stored settings; return
    the store and the run's id (the command then writes the report), or None after
    ``--dry-run`` (which lists the cells left and writes nothing).

    A run still marked ``running`` whose process lives is refused; cells kept beside the store
    by a write that failed (:mod:`harness.spill`) are stored first and not run again."""
    store = Store(store_path(args.store), must_exist=True)
    run = store.run(args.resume)
    settings, run_id = run["settings"], run["run_id"]
    refuse_changes(args, plugins, settings)
    suite = plugins.suites.get(settings["suite"])
    opts = with_artifacts(RunOptions.from_settings(settings), store.path, run_id)
    cells = expand(suite, opts, run_id)
    preflight(opts, cells, args.out)
    threads = args.threads or run["env"].get("threads") or 1
    executor = executor_for(
        plugins,
        threads,
        args.executor,
        args.ray_address,
        args.cell_timeout,
        settings.get("executor"),
    )
    if args.dry_run:
        _dry_run(store, run_id, cells, executor.name)
        return None
    store.claim_run(run_id)
    store.recover(run_id)
    todo = pending(cells, store.cells(run_id))
    print(f"harness: resuming {run_id}: {len(todo)} of {len(cells)} cells left", flush=True)
    with running(executor):
        execute(plugins, store, suite.name, run_id, todo, executor, args.store)
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
