"""``results.csv``: every cell and epoch of a run as one tidy table (one row per cell and epoch).

Columns: the run, the cell (backend, device, variant), the sweep values (one column each, named
after the swept setting, e.g. ``batch_size``), the seed, the cell's status, the epoch, then
every per-epoch metric the cells recorded (``train_loss``, ``train_acc``, ``val_loss``,
``val_acc``, ``time_s``, ...), in the units of ``results.json`` (accuracies as fractions, times
in seconds). A cell without epochs (failed, skipped, or a suite that does not train per
epoch) has one row with an empty epoch, so every cell appears. pandas, R or a spreadsheet read
it directly.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

Cell = dict[str, Any]
FIXED = ["run_id", "cell_id", "backend", "device", "variant"]
AFTER = ["seed", "status", "epoch"]


def _point(cell: Cell) -> dict[str, Any]:
    return dict(cell["spec"].get("extra", {}).get("point", {}) or {})


def sweep_columns(cells: list[Cell]) -> dict[str, str]:
    """Swept setting (``train.batch_size``) -> its column (``batch_size``), first seen first."""
    keys = list(dict.fromkeys(k for c in cells for k in _point(c)))
    short = [k.split(".")[-1] for k in keys]
    return {k: (s if short.count(s) == 1 else k) for k, s in zip(keys, short)}


def metric_columns(cells: list[Cell]) -> list[str]:
    """Every scalar per-epoch metric the cells recorded (``epoch`` apart), first seen first."""
    seen: dict[str, None] = {}
    for cell in cells:
        for epoch in cell["result"].get("epochs", []) or []:
            for key, value in epoch.items():
                if key != "epoch" and (value is None or isinstance(value, (int, float, str))):
                    seen.setdefault(key, None)
    return list(seen)


def rows(run_id: str, cells: list[Cell]) -> tuple[list[str], list[dict[str, Any]]]:
    """The header and the rows of ``results.csv``."""
    sweeps, metrics = sweep_columns(cells), metric_columns(cells)
    header = FIXED + list(sweeps.values()) + AFTER + metrics
    out = []
    for cell in cells:
        base = {
            "run_id": run_id,
            **{k: cell[k] for k in FIXED[1:]},
            **{column: _point(cell).get(key, "") for key, column in sweeps.items()},
            "seed": cell["spec"]["train"].get("seed", ""),
            "status": cell["status"],
        }
        epochs = cell["result"].get("epochs", []) or [{}]
        for i, epoch in enumerate(epochs, 1):
            number = epoch.get("epoch", i) if epoch else ""
            values = {m: _value(epoch.get(m)) for m in metrics}
            out.append({**base, "epoch": number, **values})
    return header, out


def _value(value: Any) -> Any:
    return "" if value is None else value


def write_csv(path: Path, run_id: str, cells: list[Cell]) -> Path:
    """Write ``results.csv`` for ``cells`` to ``path``."""
    header, table = rows(run_id, cells)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(table)
    return path
