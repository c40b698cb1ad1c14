"""``harness runs``: each run's cells done of those planned, so an interrupted run shows it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from harness.plugins import get_plugins
from harness.specs import DataSpec
from harness.store import Store
from harness.suite import RunOptions

HARNESS = [sys.executable, "-m", "harness.cli"]


def harness(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the CLI in ``cwd``."""
    return subprocess.run(
        [*HARNESS, *args], cwd=cwd, capture_output=True, text=True, timeout=600, env=os.environ
    )


def _line(listing: str, run_id: str) -> list[str]:
    """The columns of run ``run_id``'s line of ``harness runs``."""
    return next(x.split() for x in listing.splitlines() if x.startswith(run_id))


def _stored(path: Path, run_id: str, planned: int | None) -> None:
    """A run of the tiny suite (2 variants x 2 lrs x 2 seeds) that stored one cell and stopped,
    with or without the planned count a run stores today."""
    suite = get_plugins().suites.get("tiny")
    settings = RunOptions(("fake",), data=DataSpec("synthetic")).to_settings(suite)
    if planned is not None:
        settings["planned"] = planned
    store = Store(path)
    store.create_run(run_id, "tiny", settings, {})
    cell = {"cell_id": "c", "backend": "fake", "device": "cpu", "variant": "bn", "status": "ok"}
    store.put_cell(run_id, {**cell, "spec": {"train": {"seed": 0}}, "result": {}})
    store.set_run_status(run_id, "interrupted")
    store.close()


def test_an_interrupted_run_shows_cells_done_of_planned(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    _stored(path, "old-run", None)  # planned count worked out from the stored settings
    _stored(path, "new-run", 8)
    out = harness("runs", "--store", str(path), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "cells done/planned" in out.stdout
    assert _line(out.stdout, "old-run")[-2:] == ["1", "1/8"]
    assert _line(out.stdout, "new-run")[-2:] == ["1", "1/8"]


def test_a_run_stores_its_planned_cells(tmp_path: Path) -> None:
    tiny = ("--suite", "tiny", "--backend", "fake", "--dataset", "synthetic", "--quick")
    run = harness("run", *tiny, "--no-report", "--store", "s.sqlite", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    store = Store(tmp_path / "s.sqlite", must_exist=True)
    (row,) = store.runs()
    assert store.run(row["run_id"])["settings"]["planned"] == 2
    store.close()
    out = harness("runs", "--store", "s.sqlite", cwd=tmp_path)
    assert _line(out.stdout, row["run_id"])[-2:] == ["2", "2/2"]


def test_a_run_of_an_unknown_suite_shows_a_question_mark(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    store = Store(path)
    store.create_run("gone", "no-such-suite", {"suite": "no-such-suite"}, {})
    store.set_run_status("gone", "finished")
    store.close()
    out = harness("runs", "--store", str(path), cwd=tmp_path)
    assert out.returncode == 0 and _line(out.stdout, "gone")[-2:] == ["0", "0/?"]
