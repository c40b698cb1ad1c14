"""``harness list``, ``harness runs`` and ``harness data``: what is here, what ran."""

from __future__ import annotations

import argparse
import datetime

from tabulate import tabulate

from harness.errors import HarnessError
from harness.plugins import Plugins, get_plugins
from harness.registry import DatasetInfo, Table
from harness.runs import store_path
from harness.store import Store
from harness.suite import RunOptions, expand, seed_count

MAX_EXPANDED_SEEDS = 1000


def cmd_list(args: argparse.Namespace) -> int:
    """Backends with availability, version and reason; suites; datasets; executors; report
    sections; claims; plugins that failed to load and suites refused at registration."""
    plugins = get_plugins()
    rows = []
    for name in plugins.backends.names():
        info = plugins.backends.get(name)
        hint = info.install_hint()
        rows.append(
            [
                name,
                "unavailable" if hint else "available",
                info.version() or "-",
                hint or info.description,
            ]
        )
    print("Backends\n" + tabulate(rows, ["name", "status", "version", "details"]))
    suites = [[s, plugins.suites.get(s).description] for s in plugins.suites.names()]
    print("\nSuites\n" + tabulate(suites, ["name", "description"]))
    print("\nDatasets\n" + _datasets(plugins.datasets))
    print("\nExecutors (harness run --executor)\n" + _executors(plugins))
    sections = [[n, plugins.sections.get(n).description] for n in plugins.sections.names()]
    print("\nReport sections (a suite's report)\n" + tabulate(sections, ["name", "description"]))
    claims = [[n, plugins.claims.get(n).description] for n in plugins.claims.names()]
    print("\nClaims (a suite's extra['claims'])\n" + tabulate(claims, ["name", "description"]))
    if plugins.failures:
        failed = [[name, reason] for name, reason in plugins.failures.items()]
        print("\nPlugins that failed to load (skipped)\n" + tabulate(failed, ["plugin", "error"]))
    return 0


def _datasets(table: Table[DatasetInfo]) -> str:
    """Each dataset with its description and, for file-based ones, where its files were found."""
    from harness.data.locate import where

    rows = [[name, table.get(name).description, where(name) or "-"] for name in table.names()]
    return tabulate(rows, ["name", "description", "files"])


def _executors(plugins: Plugins) -> str:
    """Each registered executor with its availability (found without importing its package)."""
    rows = []
    for name in plugins.executors.names():
        info = plugins.executors.get(name)
        hint = info.install_hint()
        rows.append([name, "unavailable" if hint else "available", hint or info.description])
    return tabulate(rows, ["name", "status", "details"])


def cmd_runs(args: argparse.Namespace) -> int:
    """The runs in the results file: ok cells, and cells done of those planned (an interrupted
    run shows how far it got)."""
    path = store_path(args.store)
    if not path.exists():
        print(f"harness: no runs yet ({path} does not exist)")
        return 0
    store = Store(path)
    rows = [
        [
            r["run_id"],
            r["suite"],
            r["status"],
            _when(r["created"]),
            _when(r["stopped"]),
            r["ok"] or 0,
            f"{r['cells']}/{_text(planned_cells(store, r['run_id']))}",
        ]
        for r in store.runs()
    ]
    headers = ["run", "suite", "status", "created", "stopped", "ok", "cells done/planned"]
    print(tabulate(rows, headers, disable_numparse=True))
    return 0


def planned_cells(store: Store, run_id: str) -> int | None:
    """The cells the run set out to run: stored when it started (``settings["planned"]``),
    else expanded again from its stored settings; None when neither can say (a run of a
    suite no longer registered, or of an older store)."""
    try:
        settings = store.run(run_id)["settings"]
        if isinstance(settings.get("planned"), int):
            return int(settings["planned"])
        suite = get_plugins().suites.get(settings["suite"])
        opts = RunOptions.from_settings(settings)
        if not 0 < seed_count(suite, opts) <= MAX_EXPANDED_SEEDS:  # a damaged row: do not expand
            return None
        return len(expand(suite, opts, run_id))
    except (HarnessError, KeyError, TypeError, ValueError):
        return None


def _text(value: int | None) -> str:
    return "?" if value is None else str(value)


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return datetime.datetime.fromtimestamp(stamp).isoformat(timespec="seconds")


def cmd_data(args: argparse.Namespace) -> int:
    """Download a dataset's standard files, verifying checksums."""
    from harness.data.download import download

    plugins = get_plugins()
    plugins.datasets.get(args.name)
    for path in download(args.name, args.data_dir):
        print(f"harness: {path}")
    return 0
