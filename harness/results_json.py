"""The ``results.json`` format of a report: a run and its cells, written and read back here.

``harness report``, ``harness compare`` and anything else that holds a run against a reference
report read the file through :func:`from_results_json`, without the report package.
"""

from __future__ import annotations

import math
from typing import Any

from harness.schema import RESULTS_VERSION


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as ``None`` and tuples as lists (strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


CELL_EXTRA = ("attribution",)
"""Per-cell entries of a spec's ``extra`` (the suite's own entries come back from the suite)."""


def _cell_json(cell: dict[str, Any]) -> dict[str, Any]:
    spec = cell["spec"]
    result = dict(cell["result"])
    return {
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
            **{k: spec["extra"][k] for k in CELL_EXTRA if k in spec["extra"]},
        },
        "epochs": result.pop("epochs", []),
        "result": result,
        "stderr_tail": cell.get("stderr_tail", ""),
    }


def to_results_json(
    run: dict[str, Any], cells: list[dict[str, Any]], findings: dict[str, Any]
) -> dict[str, Any]:
    """The machine-readable report: run, environment, every cell with its epochs, findings."""
    keys = ("run_id", "suite", "status", "settings", "env")
    return json_safe(
        {
            "version": RESULTS_VERSION,
            **{k: run[k] for k in keys},
            **{k: run[k] for k in ("created", "stopped") if run.get(k) is not None},
            "cells": [_cell_json(c) for c in cells],
            "findings": findings,
        }
    )


def from_results_json(data: dict[str, Any], suite: Any) -> tuple[dict[str, Any], list[dict]]:
    """The run and cells that :func:`to_results_json` wrote ``data`` from (inverse of it).

    A cell's spec gets the suite's ``extra`` back; its artifacts folder is not in the JSON, so
    sections that read artifact files (bn-numerics' per-step ``.npz``) say they are missing.
    """
    run = {key: data[key] for key in ("run_id", "suite", "status", "settings", "env")}
    run.update(
        {k: data[k] for k in ("created", "stopped") if isinstance(data.get(k), (int, float))}
    )
    cells = []
    for cell in data["cells"]:
        settings = cell["settings"]
        extra = {"point": settings.get("point", {}), **getattr(suite, "extra", {})}
        extra.update({k: settings[k] for k in CELL_EXTRA if k in settings})
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
