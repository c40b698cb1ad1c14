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

from harness.commands import (
    absolute_dir,
    execute,
    executor_for,
    pick_backends,
    pick_devices,
    preflight,
    store_path,
    with_artifacts,
)
from harness.errors import HarnessError
from harness.executors import running
from harness.plugins import Plugins
from harness.runner import pending
from harness.specs import DataSpec
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


def resume(args: argparse.Namespace, plugins: Plugins) -> int:
    """Run only the missing or failed cells of a stored run, with its stored settings."""
    store = Store(store_path(args.store), must_exist=True)
    run = store.run(args.resume)
    settings, run_id = run["settings"], run["run_id"]
    refuse_changes(args, plugins, settings)
    suite = plugins.suites.get(settings["suite"])
    opts = RunOptions(
        backends=tuple(settings["backends"]),
        devices=tuple(settings["devices"]),
        data=DataSpec(**settings["data"]),
        epochs=settings["epochs"],
        seeds=settings["seeds"],
        batch_size=settings["batch_size"],
        lr=settings["lr"],
        init=settings["init"],
        quick=settings["quick"],
    )
    opts = with_artifacts(opts, store.path, run_id)
    cells = expand(suite, opts, run_id)
    preflight(opts, cells, args.out)
    todo = pending(cells, store.cells(run_id))
    threads = args.threads or run["env"].get("threads") or 1
    executor = executor_for(args, plugins, threads, settings.get("executor"))
    print(f"harness: resuming {run_id}: {len(todo)} of {len(cells)} cells left", flush=True)
    with running(executor):
        store.set_run_status(run_id, "running")
        return execute(args, plugins, store, suite.name, run_id, todo, executor)
