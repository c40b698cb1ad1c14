"""Per-cell numbers the research suites' claims and report read from stored results."""

from __future__ import annotations

import math
from typing import Any

Cell = dict[str, Any]


def probe_mean(cell: Cell, key: str) -> float:
    """Mean over a cell's probes (and layers, for per-layer lists) of ``key``; NaN without."""
    if cell["status"] != "ok":
        return math.nan
    values: list[float] = []
    for probe in cell["result"].get("probes") or []:
        item = probe.get(key)
        values.extend(item if isinstance(item, list) else [item])
    finite = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def precise_gain(cell: Cell) -> float:
    """Val acc with recomputed (precise) BN statistics minus with the running averages."""
    result = cell["result"]
    if cell["status"] != "ok" or "precise_val_acc" not in result:
        return math.nan
    return float(result["precise_val_acc"]) - float(result["running_val_acc"])


def chance(cell: Cell) -> float:
    """Accuracy of guessing: 1 / classes."""
    return 1.0 / float(cell["spec"]["model"].get("num_classes") or 10)


def scale_off(cell: Cell, threshold: str = "0.05") -> float:
    """Fraction of BN units with |scale| below ``threshold`` at the end of training."""
    value = (cell["result"].get("scale_off") or {}).get(threshold)
    return float(value) if isinstance(value, (int, float)) and cell["status"] == "ok" else math.nan
