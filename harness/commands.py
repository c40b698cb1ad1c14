"""What each ``harness`` sub-command does (argument parsing is in :mod:`harness.cli`).

Everything a user can get wrong is checked here, in the main process, before a worker starts:
names, the dataset (loaded once, so a missing, truncated or tampered file is an error, not a
failed cell), batch sizes against the dataset's size, the report folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import json
import os
import secrets
import shlex
import sys
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, UnknownNameError
from harness.executors import (
    DEFAULT_EXECUTOR,
    Executor,
    ExecutorOptions,
    Recorder,
    make_executor,
    running,
)
from harness.interrupt import SignalGuard
from harness.plugins import Plugins, get_plugins
from harness.specs import INIT_MODES, CellSpec, DataSpec
from harness.store import Store
from harness.suite import RunOptions, Suite, expand, seed_count

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


def _options(args: argparse.Namespace, plugins: Plugins) -> tuple[RunOptions, list[str]]:
    from harness.data.locate import resolve_dataset

    backends, notes = pick_backends(plugins, args.backend)
    devices = pick_devices(args.device)
    if args.dataset is not None:
        plugins.datasets.get(args.dataset)
    if args.init is not None and args.init not in INIT_MODES:
        raise UnknownNameError("init mode", args.init, INIT_MODES)
    name, note = resolve_dataset(args.dataset, args.data_dir)
    data = DataSpec(
        name=name,
        standardize=args.standardize,
        limit=args.limit or 0,
        data_dir=absolute_dir(args.data_dir),
        note=note,
    )
    opts = RunOptions(
        backends=tuple(backends),
        devices=devices,
        data=data,
        epochs=args.epochs,
        seeds=args.seeds,
        batch_size=args.batch_size,
        lr=args.lr,
        init=args.init,
        quick=args.quick,
    )
    return opts, [*notes, note] if note else notes


@functools.lru_cache(maxsize=8)
def train_size(spec: DataSpec) -> int:
    """Training samples of the dataset, loaded (and checksum-verified) here once."""
    info = get_plugins().datasets.get(spec.name)
    try:
        dataset = info.load(spec)
    except HarnessError:
        raise
    except Exception as exc:  # a plugin's loader: still one line, not a traceback
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
    if out:
        try:
            Path(out).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HarnessError(f"cannot create report folder {out}: {exc.strerror}") from None


def _settings(suite: Suite, opts: RunOptions, notes: list[str]) -> dict[str, Any]:
    return {
        "suite": suite.name,
        "backends": list(opts.backends),
        "devices": list(opts.devices),
        "data": opts.data.__dict__,
        "epochs": opts.epochs,
        "seeds": seed_count(suite, opts),
        "batch_size": opts.batch_size,
        "lr": opts.lr,
        "init": opts.init,
        "quick": opts.quick,
        "command": "harness " + shlex.join(sys.argv[1:]),
        "notes": notes,
    }


def with_artifacts(opts: RunOptions, store: Path, run_id: str) -> RunOptions:
    """``opts`` with the run's artifacts folder (next to the results file ``store``), absolute:
    a worker may run in another folder (a Ray worker does)."""
    folder = store.parent.resolve() / "artifacts" / run_id
    return dataclasses.replace(opts, artifacts=str(folder))


def cmd_run(args: argparse.Namespace) -> int:
    """Expand the suite into cells, check them, run them, store each, then write the report."""
    from harness import environment

    plugins = get_plugins()
    if args.resume:
        from harness.resume import resume

        return resume(args, plugins)
    if not args.suite:
        raise HarnessError(f"no --suite given; valid: {', '.join(plugins.suites.names())}")
    suite = plugins.suites.get(args.suite)
    opts, notes = _options(args, plugins)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_id = f"{suite.name}-{stamp}-{secrets.token_hex(2)}"
    path = store_path(args.store)
    opts = with_artifacts(opts, path, run_id)
    cells = expand(suite, opts, run_id)
    preflight(opts, cells, args.out)
    threads = args.threads or environment.default_threads()
    executor = executor_for(args, plugins, threads)
    for note in notes:
        print(f"harness: {note}", file=sys.stderr)
    if args.dry_run:
        return dry_run(suite.name, cells, executor.name)
    with running(executor):
        store = Store(path)
        settings = {**_settings(suite, opts, notes), "executor": executor.settings()}
        env = {**environment.capture(threads), "executor": executor.describe()}
        store.create_run(run_id, suite.name, settings, env)
        print(f"harness: run {run_id}: {len(cells)} cells -> {store.path}", flush=True)
        return execute(args, plugins, store, suite.name, run_id, cells, executor)


def dry_run(suite: str, cells: list[CellSpec], executor: str) -> int:
    """Print the cells a run would execute (everything already checked); store nothing."""
    backends = sorted({c.backend for c in cells})
    print(
        f"harness: dry run of {suite}: {len(cells)} cells on {', '.join(backends)} "
        f"with the {executor} executor; nothing run or stored"
    )
    for cell in cells:
        print(f"  {cell.cell_id}")
    return 0


def executor_for(
    args: argparse.Namespace, plugins: Plugins, threads: int, stored: dict[str, Any] | None = None
) -> Executor:
    """The ``--executor``, else the ``stored`` one of a resumed run, else ``local``; not started.

    ``--ray-address`` left out with the stored executor means the stored address. An unknown
    executor, or one whose package is missing, is a :class:`HarnessError` (exit 2).
    """
    stored = stored or {}
    name = args.executor or stored.get("name") or DEFAULT_EXECUTOR
    if args.ray_address and name != "ray":
        raise HarnessError(f"--ray-address is for --executor ray, not '{name}'")
    address = args.ray_address or (stored.get("address", "") if name == stored.get("name") else "")
    options = ExecutorOptions(plugins, threads, args.cell_timeout, address)
    return make_executor(name, options)


def execute(
    args: argparse.Namespace,
    plugins: Plugins,
    store: Store,
    suite: str,
    run_id: str,
    cells: list[CellSpec],
    executor: Executor,
) -> int:
    """Run ``cells`` under a :class:`SignalGuard`; on interruption mark the run and re-raise."""
    guard = SignalGuard()
    finish = Recorder(store, plugins, run_id, len(cells), guard, executor.name)
    with guard:
        try:
            plugins.pm.hook.harness_run_started(
                run_id=run_id, suite=suite, cells=[c.to_dict() for c in cells]
            )
            executor.run(cells, finish)
        except BaseException as exc:
            guard.stop()
            _stopped(store, plugins, run_id, "interrupted")
            error = guard.restore(exc)  # Ray may have turned our signal into KeyboardInterrupt
            error.resume_command = _resume_command(args, run_id)  # type: ignore[attr-defined]
            if error is exc:
                raise
            raise error from None
        with guard.deferred():
            _stopped(store, plugins, run_id, "finished")
    if not args.no_report:
        write_report(store, run_id, args.out)
    return 0


def _stopped(store: Store, plugins: Plugins, run_id: str, status: str) -> None:
    store.set_run_status(run_id, status)
    plugins.pm.hook.harness_run_finished(run_id=run_id, status=status)


def _resume_command(args: argparse.Namespace, run_id: str) -> str:
    store = ["--store", args.store] if args.store else []
    return "harness " + shlex.join(["run", "--resume", run_id, *store])


def write_report(store: Store, run_id: str, out: str | None) -> Path:
    """Build the run's report folder from the store; print and return the report's path."""
    run = store.run(run_id)
    return _build(run, store.cells(run_id), out)


def _build(run: dict[str, Any], cells: list[dict[str, Any]], out: str | None) -> Path:
    from harness.report import build_report

    suite = get_plugins().suites.get(run["suite"])
    folder = Path(out) if out else RUNS_DIR / run["run_id"]
    try:
        path = build_report(run, cells, suite, folder)
    except OSError as exc:
        raise HarnessError(f"cannot write the report to {folder}: {exc.strerror or exc}") from None
    print(f"harness: report {path}")
    return path


def load_results_json(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The run and cells a report's ``results.json`` holds."""
    from harness.report import from_results_json

    try:
        data = json.loads(path.read_text())
        suite = get_plugins().suites.get(data["suite"])
        return from_results_json(data, suite)
    except HarnessError:
        raise  # an unknown suite: names the valid ones
    except OSError as exc:
        raise HarnessError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise HarnessError(f"{path}: not a harness results.json ({exc!r})") from None


def report_from_json(path: Path, out: str | None) -> Path:
    """Rebuild a report folder from a report's ``results.json`` (no results file needed)."""
    return _build(*load_results_json(path), out)


def cmd_report(args: argparse.Namespace) -> int:
    """Rebuild a run's report folder from the store, or from a report's results.json."""
    if args.run.endswith(".json"):
        report_from_json(Path(args.run), args.out)
        return 0
    store = Store(store_path(args.store), must_exist=True)
    run_id = store.latest_run_id() if args.run == "latest" else args.run
    write_report(store, run_id, args.out)
    return 0


def dispatch(args: argparse.Namespace) -> int:
    """Run the chosen sub-command."""
    from harness import compare, listing

    handlers = {
        "run": cmd_run,
        "report": cmd_report,
        "compare": compare.cmd_compare,
        "list": listing.cmd_list,
        "runs": listing.cmd_runs,
        "data": listing.cmd_data,
    }
    return int(handlers[args.command](args))
