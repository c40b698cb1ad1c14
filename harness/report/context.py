"""What a report section sees: the run, its cells, the suite and the output folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.cells import final, series
from harness.report.style import DEFAULT_PLOT_FORMATS, save

__all__ = ["ReportContext", "final", "series"]


@dataclass
class ReportContext:
    """Inputs of report sections; sections add findings to ``data`` for results.json."""

    run: dict[str, Any]
    cells: list[dict[str, Any]]
    suite: Any
    out_dir: Path
    data: dict[str, Any] = field(default_factory=dict)
    plot_formats: tuple[str, ...] = DEFAULT_PLOT_FORMATS

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

    def save_figure(self, fig: Any, name: str, dpi: int = 110) -> str:
        """Save ``fig`` as ``name`` in every chosen format; the file name to link from markdown."""
        return save(fig, self.plot_path(name), self.plot_formats, dpi)
