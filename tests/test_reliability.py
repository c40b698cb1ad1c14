"""Reliability of runs, for real: crashing and hung workers, divergence, Ctrl-C, SIGTERM and
a killed runner, then resume; all through the ``harness`` command in subprocesses.

Faults are injected by the fake backend (``tests/fake_plugin.py``); process checks read /proc.
The store, bad input and missing frameworks are in ``test_store_and_input.py``, which shares
the helpers below.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness import cli
from harness.interrupt import Interrupted, SignalGuard
from harness.store import Store

HARNESS = [sys.executable, "-m", "harness.cli"]
FAST = ["--suite", "tiny", "--backend", "fake", "--dataset", "synthetic"]
needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


# ---- helpers -------------------------------------------------------------------------------


def harness(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Any:
    """Run the CLI to completion in ``cwd``."""
    return subprocess.run(
        [*HARNESS, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def start(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start the CLI in its own process group (like a shell job); output to files in ``cwd``."""
    with open(cwd / "stdout.txt", "w") as out, open(cwd / "stderr.txt", "w") as err:
        return subprocess.Popen(
            [*HARNESS, *args],
            cwd=cwd,
            stdout=out,
            stderr=err,
            text=True,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )


def one_line_error(out: Any, *needles: str) -> str:
    """Assert exit 2 with a single ``harness: error:`` line containing ``needles``."""
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("harness: error:"), out.stderr
    for needle in needles:
        assert needle in lines[0]
    return str(lines[0])


def wait_for(predicate: Callable[[], Any], timeout: float = 60, what: str = "") -> Any:
    """Poll ``predicate`` until it is truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or predicate}")


def stored(path: Path) -> list[dict[str, Any]]:
    """Every cell row of every run (empty while the file or its tables do not exist)."""
    if not path.exists():
        return []
    conn = sqlite3.connect(path, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        rows = [dict(r) for r in conn.execute("SELECT * FROM cells ORDER BY finished")]
    except sqlite3.OperationalError:
        rows = []
    conn.close()
    for row in rows:
        row["result"] = json.loads(row["result"])
    return rows


def runs(path: Path) -> list[dict[str, Any]]:
    """The runs table."""
    store = Store(path)
    try:
        return [dict(r) for r in store.conn.execute("SELECT * FROM runs ORDER BY created")]
    finally:
        store.close()


def _stat(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text.rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid pgrp session ...


def children(pid: int) -> list[int]:
    """Live child processes of ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat(int(entry.name))[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError):
                continue
    return found


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        return _stat(pid)[0] != "Z"
    except OSError:
        return False


def session_members(sid: int) -> list[int]:
    """Live processes in session ``sid`` (a worker and anything it started)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = _stat(int(entry.name))
            except (OSError, IndexError):
                continue
            if int(fields[3]) == sid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


# ---- worker isolation and divergence -------------------------------------------------------

FAULTS = {
    "no-bn/lr=0.05/seed=0": "segfault",
    "no-bn/lr=0.05/seed=1": "kill",
    "no-bn/lr=0.1/seed=0": "raise",
    "no-bn/lr=0.1/seed=1": "oom",
    "/bn/lr=0.05/seed=0": "nan",
}


def test_crashing_workers_fail_only_their_cells(tmp_path: Path) -> None:
    """Segfault, SIGKILL, exception and out-of-memory each fail one cell; NaN diverges one;
    the run goes on, each with a fresh worker, and the report says what happened."""
    plan = ";".join(f"{cell}={fault}" for cell, fault in FAULTS.items())
    out = harness("run", *FAST, "--out", "rep", env={"FAKE_FAULTS": plan}, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    rows = stored(tmp_path / "reports/runs/results.sqlite")
    cells = {c["cell_id"].removeprefix("fake/cpu/"): c for c in rows}
    faulty = [k.lstrip("/") for k in FAULTS]
    segv, killed, raised, oom, diverged = (cells[k] for k in faulty)
    fine = [c for k, c in cells.items() if k not in faulty]
    assert segv["reason"] == "worker killed by signal 11 SIGSEGV"
    assert "Fatal Python error: Segmentation fault" in segv["stderr_tail"]
    assert killed["reason"] == "worker killed by signal 9 SIGKILL"
    assert "injecting kill" in killed["stderr_tail"]
    assert raised["reason"] == "RuntimeError: injected failure"
    assert 'raise RuntimeError("injected failure")' in raised["stderr_tail"]
    assert "MemoryError" in oom["reason"] and "Unable to allocate" in oom["stderr_tail"]
    failed = (segv, killed, raised, oom)
    assert [c["status"] for c in failed] == ["failed"] * 4
    assert len({c["result"]["worker_pid"] for c in failed}) == 4  # a fresh worker after each
    assert diverged["status"] == "diverged"
    assert diverged["result"]["diverged_at"] == {"epoch": 1, "step": 2}
    assert "loss not finite at epoch 1, step 2" in out.stdout
    assert len(fine) == 3 and {c["status"] for c in fine} == {"ok"}
    assert runs(tmp_path / "reports/runs/results.sqlite")[0]["status"] == "finished"
    _check_failure_report((tmp_path / "rep" / "report.md").read_text())


def _check_failure_report(report: str) -> None:
    assert "## Cells not ok" in report and "Means in the tables exclude these cells" in report
    for line in ("signal 11 SIGSEGV", "signal 9 SIGKILL", "RuntimeError: injected failure"):
        assert line in report
    assert "**diverged** at epoch 1, step 2" in report
    assert "| bn (lr=0.05)    | 1/2" in report  # the diverged seed is out of the means


@needs_proc
def test_cell_timeout_kills_a_hung_worker(tmp_path: Path) -> None:
    """``--cell-timeout`` kills the hung worker (and its session); the next cell runs."""
    env = {"FAKE_FAULT": "hang", "FAKE_FAULT_CELL": "no-bn", "FAKE_FAULT_MARK": "mark"}
    args = ("run", *FAST, "--quick", "--no-report", "--cell-timeout", "2", "--store", "s.sqlite")
    out = harness(*args, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    hung, ok = stored(tmp_path / "s.sqlite")
    assert hung["status"] == "failed" and hung["reason"] == "timed out after 2 s (worker killed)"
    assert "injecting hang" in hung["stderr_tail"]
    assert ok["status"] == "ok" and ok["result"]["worker_pid"] != hung["result"]["worker_pid"]
    assert not session_members(hung["result"]["worker_pid"])


# ---- interruption and resume -----------------------------------------------------------------


def _start_hanging_run(tmp_path: Path) -> tuple[subprocess.Popen[str], int]:
    """A run whose first cell finishes and whose second hangs; returns it and its worker pid."""
    env = {"FAKE_FAULT": "hang", "FAKE_FAULT_CELL": "/bn/", "FAKE_FAULT_MARK": "mark"}
    proc = start(
        "run", *FAST, "--quick", "--no-report", "--store", "s.sqlite", env=env, cwd=tmp_path
    )
    wait_for(lambda: len(stored(tmp_path / "s.sqlite")) == 1, what="the first cell")
    wait_for((tmp_path / "mark").exists, what="the second cell to hang")
    (worker,) = children(proc.pid)
    return proc, worker


@needs_proc
def test_ctrl_c_stops_cleanly_and_resume_finishes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGINT to the whole process group (Ctrl-C): exit 130, worker gone, store and report
    intact; resume refuses other settings, then runs only the missing cell."""
    proc, worker = _start_hanging_run(tmp_path)
    os.killpg(proc.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
    assert proc.wait(timeout=30) == 130
    err = (tmp_path / "stderr.txt").read_text()
    assert "Traceback" not in err and "interrupted (SIGINT)" in err
    assert not alive(worker) and not session_members(worker)
    (run,) = runs(tmp_path / "s.sqlite")
    assert run["status"] == "interrupted" and run["stopped"] is not None
    assert [c["status"] for c in stored(tmp_path / "s.sqlite")] == ["ok"]
    assert f"harness run --resume {run['run_id']} --store s.sqlite" in err
    report = harness("report", run["run_id"], "--store", "s.sqlite", "--out", "rep", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert "status **interrupted**" in (tmp_path / "rep" / "report.md").read_text()
    _check_resume(tmp_path, run["run_id"], capsys)


def _check_resume(tmp_path: Path, run_id: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Other settings are refused (exit 2, one line); the same ones finish the run."""
    resume = ("run", "--resume", run_id, "--store", str(tmp_path / "s.sqlite"))
    for change, shown in (
        (["--seeds", "3"], "(1)"),
        (["--device", "all"], "(['cpu'])"),
        (["--epochs", "5"], "(the suite's default)"),
    ):
        assert cli.main([*resume, *change]) == 2
        err = capsys.readouterr().err.strip()
        assert err == (
            f"harness: error: --resume {run_id}: {' '.join(change)} differs from the run's "
            f"setting {shown}; leave it out to resume the run"
        )
    same = ("--no-report", "--backend", "fake", "--dataset", "synthetic", "--quick")
    done = harness(*resume, *same, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "1 of 2 cells left" in done.stdout
    cells = stored(tmp_path / "s.sqlite")
    ids = ["fake/cpu/bn/lr=0.05/seed=0", "fake/cpu/no-bn/lr=0.05/seed=0"]
    assert sorted(c["cell_id"] for c in cells) == ids  # every cell exactly once
    assert [c["status"] for c in cells] == ["ok", "ok"]
    assert runs(tmp_path / "s.sqlite")[0]["status"] == "finished"


@needs_proc
@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_stop_cleanly(tmp_path: Path, signum: int, code: int) -> None:
    """SIGTERM (or SIGHUP) to the harness process alone: 128 + signal, worker gone."""
    proc, worker = _start_hanging_run(tmp_path)
    proc.send_signal(signum)
    assert proc.wait(timeout=30) == code
    assert f"interrupted ({signal.Signals(signum).name})" in (tmp_path / "stderr.txt").read_text()
    assert not alive(worker) and not session_members(worker)
    assert runs(tmp_path / "s.sqlite")[0]["status"] == "interrupted"


@needs_proc
def test_worker_dies_with_a_sigkilled_runner(tmp_path: Path) -> None:
    """Even a runner killed by SIGKILL (no clean-up possible) leaves no worker behind."""
    proc, worker = _start_hanging_run(tmp_path)
    proc.kill()
    proc.wait(timeout=30)
    wait_for(lambda: not alive(worker), timeout=15, what="the orphaned worker to exit")


def test_a_signal_never_splits_a_stored_cell() -> None:
    """Inside ``deferred()`` (a cell being stored) a signal waits for the block to end; after
    the first interruption, further signals are held so clean-up runs to the end."""
    with SignalGuard() as guard:
        with pytest.raises(Interrupted) as raised:
            with guard.deferred():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
                finished_block = True
        assert finished_block and raised.value.exit_code == 130
        os.kill(os.getpid(), signal.SIGTERM)  # held: stopping has begun
        time.sleep(0.05)
        assert guard.pending == signal.SIGTERM
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_signal_turned_into_a_plain_keyboardinterrupt_keeps_its_exit_code() -> None:
    """A library waiting in C code (Ray's ``ray.wait``) may catch the guard's exception and
    raise a plain ``KeyboardInterrupt``; the guard gives back the signal it stood for."""
    with SignalGuard() as guard:
        with pytest.raises(Interrupted):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
        restored = guard.restore(KeyboardInterrupt())
    assert isinstance(restored, Interrupted) and restored.exit_code == 143
    other = KeyboardInterrupt()
    assert SignalGuard().restore(other) is other  # no signal arrived: a real Ctrl-C elsewhere
