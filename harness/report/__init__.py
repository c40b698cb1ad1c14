"""Reports: markdown (tabulate), figures (matplotlib, Agg), results.json and results.csv.

A report is rebuilt at any time from the store alone (``harness report RUN``). Sections are
named in the suite: registered names (``harness list``) or ``"module:function"``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.plugins import get_plugins
from harness.registry import load_object
from harness.report.context import ReportContext
from harness.report.findings import findings
from harness.report.style import DEFAULT_PLOT_FORMATS
from harness.report.tidy import write_csv
from harness.results_json import from_results_json, to_results_json
from harness.suite import cells_dataset

__all__ = ["build_report", "from_results_json", "results_json", "section"]


def results_json(ctx: ReportContext) -> dict[str, Any]:
    """The machine-readable report: run, environment, every cell with its epochs, findings."""
    return to_results_json(ctx.run, ctx.cells, ctx.data)


def section(name: str) -> Callable[[ReportContext], str]:
    """Resolve a section name (registered, or ``"module:function"``) to its function."""
    path = name if ":" in name else get_plugins().sections.get(name).function
    return load_object(path)  # type: ignore[no-any-return]


def build_report(
    run: dict[str, Any],
    cells: list[dict[str, Any]],
    suite: Any,
    out_dir: Path,
    plot_formats: tuple[str, ...] = DEFAULT_PLOT_FORMATS,
) -> Path:
    """Write report.md, figures, results.json and results.csv into ``out_dir``.

    The Findings section is rendered after the others (it reads what they measured) and
    placed right after the header. Returns the report's path.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    if hasattr(suite, "for_dataset"):  # targets set per dataset (Fashion-MNIST: lower)
        suite = suite.for_dataset(cells_dataset(cells))
    ctx = ReportContext(run, cells, suite, out_dir, plot_formats=plot_formats)
    names = list(suite.report) + (["failures"] if "failures" not in suite.report else [])
    parts = [p for p in (section(name)(ctx) for name in names) if p]
    parts.insert(min(1, len(parts)), findings(ctx))
    report = out_dir / "report.md"
    report.write_text("\n\n".join(parts).rstrip() + "\n")
    (out_dir / "results.json").write_text(json.dumps(results_json(ctx), indent=1) + "\n")
    write_csv(out_dir / "results.csv", run["run_id"], cells)
    return report
