"""Hook specifications: what a ``harness`` plugin can implement.

Registration hooks hand the plugin a ``register`` callback (the pattern of ``llm`` and ``tox``);
observer hooks let exporters follow a run without touching the core.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("harness")
hookimpl = pluggy.HookimplMarker("harness")


@hookspec
def harness_register_backends(register: Callable[[Any], None]) -> None:
    """Register backends: call ``register(BackendInfo(...))`` once per backend."""


@hookspec
def harness_register_suites(register: Callable[[Any], None]) -> None:
    """Register suites: call ``register(Suite(...))`` once per suite."""


@hookspec
def harness_register_datasets(register: Callable[[Any], None]) -> None:
    """Register datasets: call ``register(DatasetInfo(...))`` once per dataset."""


@hookspec
def harness_run_started(run_id: str, suite: str, cells: list[dict[str, Any]]) -> None:
    """Called once before the first cell of a run starts."""


@hookspec
def harness_cell_finished(result: dict[str, Any]) -> None:
    """Called after each cell's result is in the store (ok, diverged, failed or skipped)."""


@hookspec
def harness_run_finished(run_id: str, status: str) -> None:
    """Called once when a run ends: ``status`` is ``finished`` or ``interrupted``."""


@hookspec
def harness_register_sections(register: Callable[[Any], None]) -> None:
    """Register report sections: call ``register(SectionInfo(...))`` once per section."""


@hookspec
def harness_register_claims(register: Callable[[Any], None]) -> None:
    """Register claims a suite may name in ``extra["claims"]``: ``register(ClaimInfo(...))``."""


@hookspec
def harness_register_executors(register: Callable[[Any], None]) -> None:
    """Register executors (``harness run --executor``): ``register(ExecutorInfo(...))``."""


@hookspec
def harness_report_written(run_id: str, folder: str) -> None:
    """Called after a run's report folder (report.md, figures, results.json/.csv) is written."""
