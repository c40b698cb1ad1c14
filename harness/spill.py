"""Results the store could not take, kept in a JSON file beside it until ``--resume``.

When a finished cell (or a run's final status) cannot be written to the results file (the disk
is full, another process held the file locked too long), :class:`harness.store.Store` keeps it
in ``RESULTS_FILE.RUN_ID.unsaved.json``, written to a new file and renamed into place, so the
file is whole or absent. ``harness run --resume RUN_ID`` stores its cells and deletes it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.schema import check_cell_row, check_run_id

SPILL_VERSION = 1


def add(path: Path, run_id: str, cell: dict[str, Any] | None, status: str) -> Path | None:
    """Add ``cell`` (replacing one of the same id) or the run's ``status`` to the spill file at
    ``path``; ``path``, or None when it cannot be written either."""
    try:
        data = read(path) if path.exists() else None
    except HarnessError:
        data = None  # a damaged spill file: start a new one rather than lose this cell
    data = data or {"version": SPILL_VERSION, "run_id": run_id, "cells": [], "status": ""}
    if cell is not None:
        data["cells"] = [c for c in data["cells"] if c["cell_id"] != cell["cell_id"]] + [cell]
    if status:
        data["status"] = status
    try:
        write_atomic(path, json.dumps(data))
    except (OSError, TypeError, ValueError):
        return None
    return path


def spill_path(store: Path, run_id: str) -> Path:
    """The JSON file beside ``store`` keeping what could not be written for ``run_id``."""
    return store.with_name(f"{store.name}.{check_run_id(run_id)}.unsaved.json")


def read(path: Path) -> dict[str, Any]:
    """A spill file, checked: ``{"version", "run_id", "cells": [records], "status"}``."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise HarnessError(f"cannot read unsaved results {path}: {exc}") from None
    good = (
        isinstance(data, dict)
        and data.get("version") == SPILL_VERSION
        and isinstance(data.get("cells"), list)
        and all(isinstance(c, dict) and isinstance(c.get("cell_id"), str) for c in data["cells"])
        and isinstance(data.get("status", ""), str)
    )
    if not good:
        raise HarnessError(f"{path} is not a harness file of unsaved results")
    for cell in data["cells"]:
        check_cell_row(cell, f"{path}: cell {cell['cell_id']!r}")
    return data


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a new file in ``path``'s folder, then rename it over ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
