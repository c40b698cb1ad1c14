"""Run orchestration: the library the ``run``, ``report`` and ``compare`` commands call.

Names are resolved, the dataset loaded and every batch size checked here, in the main process,
before a worker starts; :func:`execute` then runs the cells and records each. Nothing here
imports a command or the report package: commands call this module, never the other way round.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import shlex
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from harness import schema
from harness.errors import HarnessError, UnavailableError, UnknownNameError
from harness.executors import DEFAULT_EXECUTOR, Executor, ExecutorOptions, Recorder
from harness.interrupt import SignalGuard, interrupted
from harness.plugins import Plugins, get_plugins
from harness.registry import load_object
from harness.results_json import from_results_json
from harness.specs import CellSpec, DataSpec
from harness.store import Store, StoreWriteError
from harness.suite import RunOptions, Suite

DEVICES = ("cpu", "gpu")
RUNS_DIR = Path("reports") / "runs"


def store_path(arg: str | None) -> Path:
    """``--store``, else ``$HARNESS_STORE``, else ``reports/runs/results.sqlite``."""
    return Path(arg or os.environ.get("HARNESS_STORE") or RUNS_DIR / "results.sqlite")


def pick_backends(plugins: Plugins, text: str) -> tuple[list[str], list[str]]:
    """Backends to run and notes about the ones skipped; unknown/unavailable named ones exit 2."""
    names = plugins.backends.names()
    if text == "all":
        usable = [n for n in names if not plugins.backends.get(n).install_hint()]
        notes = [
            f"skipping {plugins.backends.get(n).install_hint()}" for n in names if n not in usable
        ]
        if not usable:
            raise HarnessError("no backend is usable here: " + "; ".join(notes))
        return usable, notes
    chosen = [n.strip() for n in text.split(",") if n.strip()]
    if not chosen:
        raise UnknownNameError("backend", text, [*names, "all"])
    for name in chosen:
        if name not in names:
            raise UnknownNameError("backend", name, [*names, "all"])
        plugins.backends.get(name).check()
    return list(dict.fromkeys(chosen)), []


def pick_devices(text: str) -> tuple[str, ...]:
    """``cpu``, ``gpu`` or ``all``."""
    if text == "all":
        return DEVICES
    if text not in DEVICES:
        raise UnknownNameError("device", text, [*DEVICES, "all"])
    return (text,)


def absolute_dir(text: str) -> str:
    """``--data-dir`` as stored: absolute, or ``""`` when not given."""
    return str(Path(text).resolve()) if text else ""


@functools.lru_cache(maxsize=8)
def train_size(spec: DataSpec) -> int:
    """Training samples of the dataset, loaded (and checksum-verified) here once."""
    info = get_plugins().datasets.get(spec.name)
    try:
        dataset = info.load(spec)
    except HarnessError:
        raise
    except Exception as exc:  # a plugin's loader: still one line, not a traceback
        if interrupted(exc) is not exc:  # a library turned our signal into its own error
            raise interrupted(exc) from None
        problem = f"{type(exc).__name__}: {exc}"
        raise HarnessError(f"dataset '{spec.name}' failed to load: {problem}") from None
    return len(dataset.y_train)


def preflight(opts: RunOptions, cells: list[CellSpec], out: str | None) -> None:
    """Fail before any worker starts: the dataset loads, every batch fits, --out is writable."""
    samples = train_size(opts.data)
    too_big = sorted({c.train.batch_size for c in cells if c.train.batch_size > samples})
    if too_big:
        limit = f" (--limit {opts.data.limit})" if opts.data.limit else ""
        raise HarnessError(
            f"batch size {too_big[-1]} is larger than the {samples} training samples of "
            f"dataset '{opts.data.name}'{limit}"
        )
    check_memory(cells, samples)
    if out:
        try:
            Path(out).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HarnessError(f"cannot create report folder {out}: {exc.strerror}") from None


def check_memory(cells: list[CellSpec], samples: int) -> None:
    """Refuse a run whose batch order (``epochs x samples`` int32 indices per cell, built
    whole in the worker) would not fit in this machine's memory."""
    cell = max(cells, key=lambda c: c.train.epochs, default=None)
    if cell is None:
        return
    need = 4 * cell.train.epochs * samples
    have = memory_bytes()
    if need > have:
        raise HarnessError(
            f"--epochs {cell.train.epochs} needs {need / 2**30:.1f} GiB for the batch order of "
            f"{samples} samples, more than the {have / 2**30:.1f} GiB of memory here; "
            "use fewer epochs or --limit"
        )


def memory_bytes() -> int:
    """Physical memory of this machine (1 TiB where the system does not say)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 2**40


def run_settings(suite: Suite, opts: RunOptions, notes: list[str]) -> dict[str, Any]:
    """The settings a run stores: the options, the command line and the notes printed."""
    command = "harness " + shlex.join(sys.argv[1:])
    return {**opts.to_settings(suite), "command": command, "notes": notes}


def with_artifacts(opts: RunOptions, store: Path, run_id: str) -> RunOptions:
    """``opts`` with the run's artifacts folder (next to the results file ``store``), absolute:
    a worker may run in another folder (a Ray worker does)."""
    folder = store.parent.resolve() / "artifacts" / run_id
    return dataclasses.replace(opts, artifacts=str(folder))


def executor_for(
    plugins: Plugins,
    threads: int,
    name: str | None,
    address: str | None,
    cell_timeout: float | None,
    stored: dict[str, Any] | None = None,
) -> Executor:
    """Executor ``name``, else the ``stored`` one of a resumed run, else ``local``; not started.

    ``address`` left out with the stored executor means the stored address. An executor not
    registered, or one whose package is missing, is a :class:`HarnessError` (exit 2).
    """
    stored = stored or {}
    if name is not None and not name.strip():
        raise UnknownNameError("executor", name, plugins.executors.names())
    name = name or stored.get("name") or DEFAULT_EXECUTOR
    if address and name != "ray":
        raise HarnessError(f"--ray-address is for --executor ray, not '{name}'")
    address = address or (stored.get("address", "") if name == stored.get("name") else "")
    info = plugins.executors.get(name)
    hint = info.install_hint()
    if hint:
        raise UnavailableError(hint)
    executor: Executor = load_object(info.factory)(
        ExecutorOptions(plugins, threads, cell_timeout, address)
    )
    return executor


def resume_command(run_id: str, store_arg: str | None) -> str:
    """The command line that finishes run ``run_id`` (``--store`` only when one was given)."""
    store = ["--store", store_arg] if store_arg else []
    return "harness " + shlex.join(["run", "--resume", run_id, *store])


def execute(
    plugins: Plugins,
    store: Store,
    suite: str,
    run_id: str,
    cells: list[CellSpec],
    executor: Executor,
    store_arg: str | None = None,
) -> None:
    """Run ``cells`` under a :class:`SignalGuard`; on interruption mark the run and re-raise
    (with the command that resumes it, ``--store store_arg`` included when given)."""
    guard = SignalGuard()
    finish = Recorder(store, plugins, run_id, len(cells), guard, executor.name)
    started = time.time()
    with guard:
        try:
            plugins.pm.hook.harness_run_started(
                run_id=run_id, suite=suite, cells=[c.to_dict() for c in cells]
            )
            executor.run(cells, finish)
        except BaseException as exc:
            guard.stop()
            # A signal while the workers shut down after the last cell: the run is complete.
            whole = not isinstance(exc, StoreWriteError) and _all_stored(store, cells, started)
            with contextlib.suppress(StoreWriteError):  # the status is then in the spill file
                _stopped(store, plugins, run_id, "finished" if whole else "interrupted")
            error = guard.restore(exc)  # Ray may have turned our signal into KeyboardInterrupt
            error.resume_command = resume_command(run_id, store_arg)  # type: ignore[attr-defined]
            if error is exc:
                raise
            raise error from None
        try:
            with guard.deferred():
                _stopped(store, plugins, run_id, "finished")
        except StoreWriteError as exc:
            exc.resume_command = resume_command(run_id, store_arg)  # type: ignore[attr-defined]
            raise


def _all_stored(store: Store, cells: list[CellSpec], since: float) -> bool:
    """Whether every one of ``cells`` has a row written after ``since`` (this attempt's)."""
    if not cells:
        return True
    try:
        rows = store.cells(cells[0].run_id)
    except (HarnessError, sqlite3.Error):
        return False
    fresh = {r["cell_id"] for r in rows if r["finished"] >= since}
    return all(c.cell_id in fresh for c in cells)


def _stopped(store: Store, plugins: Plugins, run_id: str, status: str) -> None:
    store.set_run_status(run_id, status)
    plugins.pm.hook.harness_run_finished(run_id=run_id, status=status)


def load_results_json(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The run and cells a report's ``results.json`` holds."""
    data = schema.load_results_json(path)  # read at most so much, types checked
    suite = get_plugins().suites.get(data["suite"])
    try:
        run, cells = from_results_json(data, suite)
    except (ValueError, KeyError, TypeError) as exc:
        raise HarnessError(f"{path}: not a harness results.json ({exc!r})") from None
    schema.check_report_cells(cells, str(path))  # every spec field present (defaults filled)
    return run, cells


def load_run(ref: str, store_arg: str | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The run and cells named by ``ref`` (run id, ``latest`` or a results.json path)."""
    if ref.endswith(".json"):
        return load_results_json(Path(ref))
    store = Store(store_path(store_arg), must_exist=True)
    run_id = store.latest_run_id() if ref == "latest" else ref
    run, cells = store.run(run_id), store.cells(run_id)
    schema.check_report_cells(cells, f"{store.path}: run {run_id}")
    return run, cells
