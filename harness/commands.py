"""What each ``harness`` sub-command does (argument parsing is in :mod:`harness.cli`)."""

from __future__ import annotations

import argparse
import datetime
import os
import secrets
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, UnknownNameError
from harness.plugins import Plugins, get_plugins
from harness.specs import INIT_MODES, DataSpec
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
        plugins.backends.get(name).check() if name in names else _unknown("backend", name, names)
    return list(dict.fromkeys(chosen)), []


def _unknown(kind: str, name: str, valid: list[str]) -> None:
    raise UnknownNameError(kind, name, [*valid, "all"] if kind == "backend" else valid)


def _devices(text: str) -> tuple[str, ...]:
    if text == "all":
        return DEVICES
    if text not in DEVICES:
        raise UnknownNameError("device", text, [*DEVICES, "all"])
    return (text,)


def _options(args: argparse.Namespace, plugins: Plugins) -> tuple[RunOptions, list[str]]:
    from harness.data.locate import resolve_dataset

    backends, notes = pick_backends(plugins, args.backend)
    if args.dataset is not None:
        plugins.datasets.get(args.dataset)
    if args.init is not None and args.init not in INIT_MODES:
        raise UnknownNameError("init mode", args.init, INIT_MODES)
    name, note = resolve_dataset(args.dataset, args.data_dir)
    if note:
        notes.append(note)
    data = DataSpec(
        name=name,
        standardize=args.standardize,
        limit=args.limit or 0,
        data_dir=str(Path(args.data_dir).resolve()) if args.data_dir else "",
        note=note,
    )
    opts = RunOptions(
        backends=tuple(backends),
        devices=_devices(args.device),
        data=data,
        epochs=args.epochs,
        seeds=args.seeds,
        batch_size=args.batch_size,
        lr=args.lr,
        init=args.init,
        quick=args.quick,
    )
    return opts, notes


def _settings(suite: Suite, opts: RunOptions) -> dict[str, Any]:
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
    }


def _sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def cmd_run(args: argparse.Namespace) -> int:
    """Expand the suite into cells, run them, store each, then write the report."""
    from harness import environment
    from harness.runner import Runner, pending

    plugins = get_plugins()
    if args.resume:
        return resume(args, plugins)
    if not args.suite:
        raise UnknownNameError("suite", "", plugins.suites.names())
    suite = plugins.suites.get(args.suite)
    opts, notes = _options(args, plugins)
    for note in notes:
        print(f"harness: {note}", file=sys.stderr)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_id = f"{suite.name}-{stamp}-{secrets.token_hex(2)}"
    threads = args.threads or environment.default_threads()
    store = Store(store_path(args.store))
    store.create_run(run_id, suite.name, _settings(suite, opts), environment.capture(threads))
    cells = expand(suite, opts, run_id)
    print(f"harness: run {run_id}: {len(cells)} cells -> {store.path}")
    return _execute(args, plugins, store, suite, run_id, pending(cells, []), threads, Runner)


def _execute(
    args: argparse.Namespace,
    plugins: Plugins,
    store: Store,
    suite: Suite,
    run_id: str,
    cells: list[Any],
    threads: int,
    runner_cls: Any,
) -> int:
    previous = signal.signal(signal.SIGTERM, _sigterm)
    runner = runner_cls(plugins, store, threads, args.cell_timeout)
    plugins.pm.hook.harness_run_started(
        run_id=run_id, suite=suite.name, cells=[c.to_dict() for c in cells]
    )
    try:
        runner.run_cells(run_id, cells)
    except KeyboardInterrupt:
        store.set_run_status(run_id, "interrupted")
        plugins.pm.hook.harness_run_finished(run_id=run_id, status="interrupted")
        print(f"harness: run {run_id} interrupted", file=sys.stderr)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    store.set_run_status(run_id, "finished")
    plugins.pm.hook.harness_run_finished(run_id=run_id, status="finished")
    if not args.no_report:
        _write_report(store, run_id, args.out)
    return 0


def resume(args: argparse.Namespace, plugins: Plugins) -> int:
    """Run only the missing or failed cells of a stored run, with its stored settings."""
    from harness.runner import Runner, pending

    store = Store(store_path(args.store))
    run = store.run(args.resume)
    settings = run["settings"]
    _refuse_changes(args, settings)
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
    cells = pending(expand(suite, opts, run["run_id"]), store.cells(run["run_id"]))
    print(f"harness: resuming {run['run_id']}: {len(cells)} cells left")
    store.set_run_status(run["run_id"], "running")
    threads = args.threads or run["env"].get("threads") or 1
    return _execute(args, plugins, store, suite, run["run_id"], cells, threads, Runner)


RESUME_FIXED = {
    "suite": "suite",
    "epochs": "epochs",
    "seeds": "seeds",
    "batch_size": "batch_size",
    "lr": "lr",
    "init": "init",
}


def _refuse_changes(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    for arg, key in RESUME_FIXED.items():
        given = getattr(args, arg)
        if (
            given is not None
            and given != settings.get(key)
            and not (key == "seeds" and given == settings.get("seeds"))
        ):
            raise HarnessError(
                f"--resume {args.resume}: --{arg.replace('_', '-')} {given} differs "
                f"from the run's {settings.get(key)}; resume with its settings"
            )


def _write_report(store: Store, run_id: str, out: str | None) -> Path:
    from harness.report import build_report

    run = store.run(run_id)
    suite = get_plugins().suites.get(run["suite"])
    folder = Path(out) if out else RUNS_DIR / run_id
    path = build_report(run, store.cells(run_id), suite, folder)
    print(f"harness: report {path}")
    return path


def cmd_report(args: argparse.Namespace) -> int:
    """Rebuild a run's report folder from the store."""
    store = Store(store_path(args.store))
    run_id = store.latest_run_id() if args.run == "latest" else args.run
    _write_report(store, run_id, args.out)
    return 0


def dispatch(args: argparse.Namespace) -> int:
    """Run the chosen sub-command."""
    from harness import listing

    handlers = {
        "run": cmd_run,
        "report": cmd_report,
        "list": listing.cmd_list,
        "runs": listing.cmd_runs,
        "data": listing.cmd_data,
    }
    return int(handlers[args.command](args))
