"""Reading a timing cell's stored loops and GEMM rates: shared by the timing tables and plot."""

from __future__ import annotations

import math
from typing import Any

from harness.report.stats import Spread, spread

Cell = dict[str, Any]
Loop = dict[str, Any]


def batch(cell: Cell) -> int:
    """The cell's batch size."""
    return int(cell["result"]["batch_size"])


def loop(cell: Cell, kind: str, bn: bool) -> Loop | None:
    """The stored loop ``kind`` (harness, expert, tutorial) with or without BN."""
    found: Loop | None = cell["result"]["loops"].get(f"{kind}/{'bn' if bn else 'no-bn'}")
    return found


def steady(entry: Loop | None) -> Spread:
    """Steady-state epoch seconds of a loop."""
    return spread(entry["times_s"] if entry else [])


def gemm_rate(cell: Cell) -> tuple[float, float]:
    """Best and median measured GEMM FLOP/s of the cell's backend (NaN when not measured)."""
    rates = spread(cell["result"].get("gemm", {}).get("rates", []))
    return (rates.hi, rates.median) if rates.n else (math.nan, math.nan)


def epoch_flops(cell: Cell) -> float:
    """GEMM FLOPs of one harness epoch (full batches)."""
    res = cell["result"]
    return float(res["gemm"]["step_flops"]) * res["steps_per_epoch"]


def machine_rate(cells: list[Cell], cell: Cell) -> float:
    """The best GEMM rate any backend measured on this machine at ``cell``'s batch size."""
    same = [c for c in cells if batch(c) == batch(cell) and c["device"] == cell["device"]]
    rates = [gemm_rate(c)[0] for c in same]
    finite = [r for r in rates if math.isfinite(r)]
    return max(finite) if finite else math.nan
