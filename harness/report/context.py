"""What a report section sees: the run, its cells, the suite and the output folder."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class ReportContext:
    """Inputs of report sections; sections add findings to ``data`` for results.json."""

    run: dict[str, Any]
    cells: list[dict[str, Any]]
    suite: Any
    out_dir: Path
    data: dict[str, Any] = field(default_factory=dict)

    def ok_cells(self) -> list[dict[str, Any]]:
        """Cells that trained to the end."""
        return [c for c in self.cells if c["status"] == "ok"]

    def trained_cells(self) -> list[dict[str, Any]]:
        """Cells with epoch metrics (ok or diverged)."""
        return [c for c in self.cells if c["result"].get("epochs")]

    def plot_path(self, name: str) -> Path:
        """Where to save a plot; the markdown links it relatively."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        return self.out_dir / name


def series(cell: dict[str, Any], key: str) -> list[float]:
    """One metric per epoch of a cell (None for a missing or non-finite value -> NaN)."""
    out = []
    for epoch in cell["result"].get("epochs", []):
        value = epoch.get(key)
        out.append(float(value) if isinstance(value, (int, float)) else math.nan)
    return out


def final(cell: dict[str, Any], key: str) -> float:
    """The last epoch's value of a metric, NaN when none."""
    values = series(cell, key)
    return values[-1] if values else math.nan
