"""The sub-commands moved to :mod:`harness.cli.commands`; this module re-exports the names other
code imported from here (the report builders and the run library's names)."""

from __future__ import annotations

from harness.cli.commands import (
    cmd_report,
    cmd_run,
    dispatch,
    plot_formats,
    report_from_json,
    start,
    write_report,
)
from harness.runs import (
    DEVICES,
    RUNS_DIR,
    absolute_dir,
    executor_for,
    load_results_json,
    load_run,
    pick_backends,
    pick_devices,
    store_path,
    train_size,
)

__all__ = [
    "DEVICES",
    "RUNS_DIR",
    "absolute_dir",
    "cmd_report",
    "cmd_run",
    "dispatch",
    "executor_for",
    "load_results_json",
    "load_run",
    "pick_backends",
    "pick_devices",
    "plot_formats",
    "report_from_json",
    "start",
    "store_path",
    "train_size",
    "write_report",
]
