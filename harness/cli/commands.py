"""What each ``harness`` sub-command does (argument parsing is in :mod:`harness.cli.parser`).

Commands call the libraries (:mod:`harness.runs`, :mod:`harness.resume`, :mod:`harness.compare`,
the report); nothing imports a command. The argparse namespace stops here: a resume gets
:class:`~harness.resume.ResumeOptions`, a new run :class:`~harness.suite.RunOptions`.

Everything a user can get wrong is checked here, in the main process, before a worker starts:
names, the dataset (loaded once, so a missing, truncated or tampered file is an error, not a
failed cell), batch sizes against the dataset's size, the report folder.
"""

from __future__ import annotations

import argparse
import datetime
import secrets
import sys
from pathlib import Path
from typing import Any

from harness import check, environment, listing
from harness.cli.resume_check import refusing_changes, resume_options
from harness.compare import Thresholds, load, markdown
from harness.errors import HarnessError, UnknownNameError
from harness.executors import running
from harness.exporters import enable_exporters
from harness.plugins import Plugins, get_plugins
from harness.progress import showing
from harness.resume import resume
from harness.runs import (
    DEVICES,
    RUNS_DIR,
    absolute_dir,
    execute,
    executor_for,
    load_results_json,
    load_run,
    pick_backends,
    pick_devices,
    preflight,
    resume_command,
    run_settings,
    store_path,
    train_size,
    with_artifacts,
)
from harness.schema import check_report_cells, check_run_id
from harness.specs import DEFAULTS_MODES, INIT_MODES, CellSpec, DataSpec
from harness.store import Store
from harness.suite import RunOptions, expand

__all__ = [  # the run library's names, importable from here as before
    "DEVICES",
    "RUNS_DIR",
    "absolute_dir",
    "executor_for",
    "load_results_json",
    "load_run",
    "pick_backends",
    "pick_devices",
    "store_path",
    "train_size",
]


def _options(args: argparse.Namespace, plugins: Plugins) -> tuple[RunOptions, list[str]]:
    from harness.data.locate import resolve_dataset

    backends, notes = pick_backends(plugins, args.backend)
    devices = pick_devices(args.device)
    if args.dataset is not None:
        plugins.datasets.get(args.dataset)
    if args.init is not None and args.init not in INIT_MODES:
        raise UnknownNameError("init mode", args.init, INIT_MODES)
    if args.defaults is not None and args.defaults not in DEFAULTS_MODES:
        raise UnknownNameError("defaults mode", args.defaults, DEFAULTS_MODES)
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
        defaults=args.defaults,
    )
    return opts, [*notes, note] if note else notes


def cmd_run(args: argparse.Namespace) -> int:
    """Expand the suite into cells, check them, run them, store each, then write the report."""
    plugins = get_plugins()
    if args.resume:
        with showing(plugins.pm, args.quiet):
            enable_exporters(args, plugins)
            resumed = resume(resume_options(args), plugins, refusing_changes(args, plugins))
        if resumed is None:
            return 0  # a dry run
        store, run_id = resumed
    else:
        started = start(args, plugins)
        if started is None:
            return 0  # a dry run
        store, run_id = started
    if not args.no_report:
        out = args.out or store.run(run_id)["settings"].get("out") or None  # a resume's --out
        try:
            write_report(store, run_id, out, plot_formats(args))
        except KeyboardInterrupt as exc:  # a signal while writing: say how to finish it
            exc.resume_command = resume_command(run_id, args.store)  # type: ignore[attr-defined]
            raise
    return 0


def plot_formats(args: argparse.Namespace) -> tuple[str, ...]:
    """``--plot-format`` as a tuple (default PNG and SVG); an unknown format exits 2."""
    from harness.report.style import DEFAULT_PLOT_FORMATS, parse_formats

    text = getattr(args, "plot_format", None)
    return parse_formats(text) if text else DEFAULT_PLOT_FORMATS


def start(args: argparse.Namespace, plugins: Plugins) -> tuple[Store, str] | None:
    """Expand, check and run a new run; its store and id (``None`` after a dry run)."""
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
    formats, exporters = plot_formats(args), enable_exporters(args, plugins)
    threads = args.threads or environment.default_threads()
    executor = executor_for(plugins, threads, args.executor, args.ray_address, args.cell_timeout)
    for note in notes:
        print(f"harness: {note}", file=sys.stderr)
    if args.dry_run:
        dry_run(suite.name, cells, executor.name)
        return None
    with running(executor), showing(plugins.pm, args.quiet):
        store = Store(path)
        settings = {**run_settings(suite, opts, notes), "executor": executor.settings()}
        settings.update(out=str(Path(args.out).resolve()) if args.out else "", exports=exporters)
        settings.update(plot_formats=list(formats), planned=len(cells))
        env = {**environment.capture(threads), "executor": executor.describe()}
        store.create_run(run_id, suite.name, settings, env)
        if not args.quiet:
            print(f"harness: run {run_id}: {len(cells)} cells -> {store.path}", flush=True)
        execute(plugins, store, suite.name, run_id, cells, executor, args.store)
    return store, run_id


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


def write_report(
    store: Store, run_id: str, out: str | None, formats: tuple[str, ...] | None = None
) -> Path:
    """Build the run's report folder from the store; print its findings and path, return it."""
    run = store.run(run_id)
    return _build(run, store.cells(run_id), out, formats)


def _build(
    run: dict[str, Any],
    cells: list[dict[str, Any]],
    out: str | None,
    formats: tuple[str, ...] | None = None,
) -> Path:
    from harness.report import build_report
    from harness.report.findings import terminal_findings

    plugins = get_plugins()
    suite = plugins.suites.get(run["suite"])
    check_report_cells(cells, f"run {run['run_id']}")
    folder = Path(out) if out else RUNS_DIR / check_run_id(run["run_id"], "run")
    chosen = formats or tuple(run["settings"].get("plot_formats") or ()) or None
    try:
        path = build_report(run, cells, suite, folder, *([chosen] if chosen else []))
    except OSError as exc:
        raise HarnessError(f"cannot write the report to {folder}: {exc.strerror or exc}") from None
    plugins.pm.hook.harness_report_written(run_id=run["run_id"], folder=str(folder))
    findings = terminal_findings(path)
    if findings:
        print(findings)
    print(f"harness: report {path}")
    return path


def report_from_json(path: Path, out: str | None, formats: tuple[str, ...] | None = None) -> Path:
    """Rebuild a report folder from a report's ``results.json`` (no results file needed).

    The file may come from anywhere: its shape is checked when read, and contents that pass
    that check but do not fit together (a report section fails on them) are one line too."""
    run, cells = load_results_json(path)
    try:
        return _build(run, cells, out, formats)
    except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
        raise HarnessError(f"{path}: cannot build a report from it ({exc!r:.200})") from None


def cmd_report(args: argparse.Namespace) -> int:
    """Rebuild a run's report folder from the store, or from a report's results.json."""
    formats = plot_formats(args)
    if args.run.endswith(".json"):
        report_from_json(Path(args.run), args.out, formats)
        return 0
    store = Store(store_path(args.store), must_exist=True)
    run_id = store.latest_run_id() if args.run == "latest" else args.run
    write_report(store, run_id, args.out, formats)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Print (and with ``--out``, write) the comparison of two runs; 1 when B exceeds a
    threshold (``--max-slowdown``, ``--max-acc-drop``, ``--fail-on-verdict-change``)."""
    limits = Thresholds(args.max_slowdown, args.max_acc_drop, bool(args.fail_on_verdict_change))
    text, failed = markdown(load(args.a, args.store), load(args.b, args.store), limits)
    if args.out:
        try:
            Path(args.out).write_text(text)
        except OSError as exc:
            raise HarnessError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    print(text, end="")
    if failed:
        print(f"harness: compare: {len(failed)} threshold(s) exceeded", file=sys.stderr)
        return 1
    return 0


def dispatch(args: argparse.Namespace) -> int:
    """Run the chosen sub-command."""
    handlers = {
        "run": cmd_run,
        "report": cmd_report,
        "compare": cmd_compare,
        "list": listing.cmd_list,
        "runs": listing.cmd_runs,
        "data": listing.cmd_data,
        "check": check.cmd_check,
    }
    return int(handlers[args.command](args))
