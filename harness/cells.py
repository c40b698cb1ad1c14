"""Stored cells as read back from the store or a results.json: per-epoch series and grouping.

The lowest layer of the results code: claims, reports and ``compare`` all read cells through it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

Cell = dict[str, Any]


def series(cell: Cell, key: str) -> list[float]:
    """One metric per epoch of a cell (None for a missing or non-finite value -> NaN)."""
    out = []
    for epoch in cell["result"].get("epochs", []):
        value = epoch.get(key)
        out.append(float(value) if isinstance(value, (int, float)) else math.nan)
    return out


def final(cell: Cell, key: str) -> float:
    """The last epoch's value of a metric, NaN when none."""
    values = series(cell, key)
    return values[-1] if values else math.nan


def group(cells: list[Cell], *keys: str) -> dict[tuple[Any, ...], list[Cell]]:
    """Cells grouped by the given keys (``point``: the sweep point as text), first seen first."""
    out: dict[tuple[Any, ...], list[Cell]] = defaultdict(list)
    for cell in cells:
        out[tuple(cell_key(cell, k) for k in keys)].append(cell)
    return dict(out)


def cell_key(cell: Cell, key: str) -> Any:
    """A grouping value of a cell: a column, ``point``, ``seed`` or a ``train.x``/``model.x``."""
    spec = cell["spec"]
    if key == "point":
        return ",".join(
            f"{k.split('.')[-1]}={v}" for k, v in spec["extra"].get("point", {}).items()
        )
    if key == "seed":
        return spec["train"]["seed"]
    if "." in key:
        part, _, name = key.partition(".")
        return spec[part][name]
    return cell[key]
