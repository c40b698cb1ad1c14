"""Aggregates of stored cells over seeds: the rows both the report's summary and ``compare``
read, and the framework versions each backend reported."""

from __future__ import annotations

import math
from typing import Any

from harness.cells import Cell, final, group, series
from harness.stats import median, summarize


def backend_versions(cells: list[Cell]) -> dict[str, dict[str, str]]:
    """Per ``backend/device``: the framework versions and worker environment the first cell
    that reported them gave."""
    out: dict[str, dict[str, str]] = {}
    for cell in cells:
        key = f"{cell['backend']}/{cell['device']}"
        if cell["result"].get("versions") and key not in out:
            out[key] = {**cell["result"]["versions"], **cell["result"].get("worker_env", {})}
    return out


def epochs_to_target(cell: Cell, target: float) -> float:
    """First epoch whose validation accuracy reaches ``target`` (NaN when never)."""
    for i, acc in enumerate(series(cell, "val_acc"), 1):
        if acc >= target:
            return float(i)
    return math.nan


def summary_rows(cells: list[Cell], target: float) -> list[dict[str, Any]]:
    """One row per (backend, device, variant, sweep point): aggregates over seeds."""
    rows = []
    for (backend, device, variant, point), members in group(
        cells, "backend", "device", "variant", "point"
    ).items():
        ok = [c for c in members if c["status"] == "ok"]
        times = [t for c in ok for t in series(c, "time_s")[1:]]
        reached = [epochs_to_target(c, target) for c in ok]
        rows.append(
            {
                "backend": backend,
                "device": device,
                "variant": variant,
                "point": point,
                "seeds": len(members),
                "ok": len(ok),
                "statuses": sorted({c["status"] for c in members}),
                "final_val_acc": summarize(final(c, "val_acc") for c in ok),
                "best_val_acc": summarize(max(series(c, "val_acc"), default=math.nan) for c in ok),
                "final_train_loss": summarize(final(c, "train_loss") for c in ok),
                "final_val_loss": summarize(final(c, "val_loss") for c in ok),
                "epochs_to_target": summarize(reached),
                "reached": sum(1 for r in reached if math.isfinite(r)),
                "first_epoch_s": median(series(c, "time_s")[0] for c in ok if series(c, "time_s")),
                "median_epoch_s": median(times),
            }
        )
    return rows
