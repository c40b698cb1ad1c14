"""Reports: markdown (tabulate) + PNG plots (matplotlib, Agg) + results.json, from the store.

A report is rebuilt at any time from the store alone (``harness report RUN``). Sections are
named in the suite (built-in names below, or ``"module:function"`` for a plugin's own).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.registry import load_object
from harness.report.context import ReportContext

BUILTIN_SECTIONS = {
    "header": "harness.report.sections:header",
    "summary": "harness.report.sections:summary",
    "curves": "harness.report.curves:curves",
    "agreement": "harness.report.curves:agreement",
    "failures": "harness.report.sections:failures",
}


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def results_json(ctx: ReportContext) -> dict[str, Any]:
    """The machine-readable report: run, environment, every cell with its epochs, findings."""
    cells = []
    for cell in ctx.cells:
        spec = cell["spec"]
        result = dict(cell["result"])
        cells.append(
            {
                "cell_id": cell["cell_id"],
                "backend": cell["backend"],
                "device": cell["device"],
                "variant": cell["variant"],
                "status": cell["status"],
                "reason": cell["reason"],
                "settings": {
                    "model": spec["model"],
                    "train": spec["train"],
                    "data": spec["data"],
                    "point": spec["extra"].get("point", {}),
                },
                "epochs": result.pop("epochs", []),
                "result": result,
                "stderr_tail": cell.get("stderr_tail", ""),
            }
        )
    run = ctx.run
    return _json_safe(
        {
            "run_id": run["run_id"],
            "suite": run["suite"],
            "status": run["status"],
            "settings": run["settings"],
            "env": run["env"],
            "cells": cells,
            "findings": ctx.data,
        }
    )


def from_results_json(data: dict[str, Any], suite: Any) -> tuple[dict[str, Any], list[dict]]:
    """The run and cells that :func:`results_json` wrote ``data`` from (inverse of it).

    A cell's spec gets the suite's ``extra`` back; its artifacts folder is not in the JSON, so
    sections that read artifact files (bn-numerics' per-step ``.npz``) say they are missing.
    """
    run = {key: data[key] for key in ("run_id", "suite", "status", "settings", "env")}
    cells = []
    for cell in data["cells"]:
        settings = cell["settings"]
        extra = {"point": settings.get("point", {}), **getattr(suite, "extra", {})}
        spec = {key: settings[key] for key in ("model", "train", "data")}
        cells.append(
            {
                **{key: cell[key] for key in ("cell_id", "backend", "device", "variant")},
                **{key: cell[key] for key in ("status", "reason", "stderr_tail")},
                "spec": {**spec, "extra": extra},
                "result": {**cell["result"], "epochs": cell["epochs"]},
            }
        )
    return run, cells


def section(name: str) -> Callable[[ReportContext], str]:
    """Resolve a section name to its function."""
    return load_object(BUILTIN_SECTIONS.get(name, name))  # type: ignore[no-any-return]


def build_report(
    run: dict[str, Any], cells: list[dict[str, Any]], suite: Any, out_dir: Path
) -> Path:
    """Write report.md, plots and results.json into ``out_dir``; return the report path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = ReportContext(run, cells, suite, out_dir)
    names = list(suite.report) + (["failures"] if "failures" not in suite.report else [])
    parts = [section(name)(ctx) for name in names]
    report = out_dir / "report.md"
    report.write_text("\n\n".join(p for p in parts if p).rstrip() + "\n")
    (out_dir / "results.json").write_text(json.dumps(results_json(ctx), indent=1) + "\n")
    return report
