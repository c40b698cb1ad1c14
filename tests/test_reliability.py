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
    the first interruption, further signals are held so clean-up runs to the end. The guard
    gives back whatever handlers were there before (this test process may have inherited
    SIGINT ignored: a background job, ``nohup``, a CI runner)."""
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    mine = {s: signal.signal(s, signal.default_int_handler) for s in before}  # not ignored
    try:
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
        assert all(signal.getsignal(s) is signal.default_int_handler for s in mine)
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
    assert {s: signal.getsignal(s) for s in before} == before


def test_a_signal_ignored_at_start_stays_ignored() -> None:
    """``nohup`` ignores SIGHUP: the guard must not take it back (the run would stop when the
    terminal closes)."""
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with SignalGuard():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)


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


# ---- the store cannot be written -------------------------------------------------------------


def _fill_disk_after_first_cell(monkeypatch: pytest.MonkeyPatch) -> None:
    """From the second stored cell on, the results file may not grow: SQLite's own page cap
    (``max_page_count``) gives the real SQLITE_FULL, "database or disk is full"."""
    real = Store.put_cell
    calls = []

    def put_cell(self: Store, run_id: str, cell: dict[str, Any]) -> None:
        calls.append(cell["cell_id"])
        if len(calls) == 2:
            pages = self.conn.execute("PRAGMA page_count").fetchone()[0]
            self.conn.execute(f"PRAGMA max_page_count={pages}")
        real(self, run_id, cell)

    monkeypatch.setattr(Store, "put_cell", put_cell)


def test_a_full_disk_mid_run_stops_cleanly_and_resume_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A cell that cannot be stored: exit 75, one line naming the cause, its result kept
    beside the store, the run ``interrupted``; ``--resume`` stores the kept cell without
    training it again and finishes the run."""
    monkeypatch.chdir(tmp_path)
    _fill_disk_after_first_cell(monkeypatch)
    args = ["run", *FAST, "--no-report", "--store", "s.sqlite"]
    assert cli.main(args) == 75
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert "database or disk is full" in err and "unsaved.json" in err and "--resume" in err
    monkeypatch.undo()
    (run,) = runs(tmp_path / "s.sqlite")
    spills = list(tmp_path.glob("s.sqlite.*.unsaved.json"))
    assert len(spills) == 1 and run["status"] == "interrupted"
    kept = json.loads(spills[0].read_text())["cells"]
    before = stored(tmp_path / "s.sqlite")
    assert len(kept) == 1 and kept[0]["cell_id"] not in {c["cell_id"] for c in before}
    done = harness("run", "--resume", run["run_id"], "--store", "s.sqlite", "--no-report",
                   cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"{8 - len(before) - 1} of 8 cells left" in done.stdout  # the kept cell is not rerun
    cells = stored(tmp_path / "s.sqlite")
    assert len(cells) == 8 and {c["status"] for c in cells} == {"ok"}
    (recovered,) = [c for c in cells if c["cell_id"] == kept[0]["cell_id"]]
    assert recovered["result"]["worker_pid"] == kept[0]["result"]["worker_pid"]
    assert runs(tmp_path / "s.sqlite")[0]["status"] == "finished" and not spills[0].exists()


def test_a_store_locked_too_long_stops_cleanly(tmp_path: Path) -> None:
    """Another process holds the results file's write lock past ``$HARNESS_STORE_WAIT_S``: the
    run retries, then stops with exit 75 and one line; the run's status, which could not be
    written either, is in the spill file; after the lock goes, ``--resume`` finishes."""
    env = {"HARNESS_STORE_WAIT_S": "1"}
    proc = start("run", *FAST, "--no-report", "--store", "s.sqlite", env=env, cwd=tmp_path)
    (run,) = wait_for(lambda: runs(tmp_path / "s.sqlite"), what="the run to be created")
    locker = sqlite3.connect(tmp_path / "s.sqlite", isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")  # before the first cell ends (its worker is starting)
    try:
        assert proc.wait(timeout=120) == 75
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    err = (tmp_path / "stderr.txt").read_text().strip()
    assert len(err.splitlines()) == 1 and "locked by another process for too long" in err
    (spill,) = tmp_path.glob("s.sqlite.*.unsaved.json")
    data = json.loads(spill.read_text())
    assert data["status"] == "interrupted" and len(data["cells"]) == 1
    done = harness("run", "--resume", run["run_id"], "--store", "s.sqlite", "--no-report",
                   cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    cells = stored(tmp_path / "s.sqlite")
    assert len(cells) == 8 and runs(tmp_path / "s.sqlite")[0]["status"] == "finished"


# ---- who owns a running run -------------------------------------------------------------------


@needs_proc
def test_a_live_run_cannot_be_resumed_a_killed_one_can(tmp_path: Path) -> None:
    """The store knows the run's owner: ``--resume`` of a run still going is refused (exit 2,
    one line); once its process is SIGKILLed (status stays ``running``) it resumes and ends;
    ``--resume --dry-run`` in between lists the cells and trains nothing."""
    proc, _ = _start_hanging_run(tmp_path)
    (run,) = runs(tmp_path / "s.sqlite")
    assert run["status"] == "running" and run["owner_pid"] == proc.pid and run["heartbeat"]
    resume = ("run", "--resume", run["run_id"], "--store", "s.sqlite", "--no-report")
    one_line_error(harness(*resume, cwd=tmp_path), "still running", f"pid {proc.pid}")
    proc.kill()
    proc.wait(timeout=30)
    assert runs(tmp_path / "s.sqlite")[0]["status"] == "running"
    dry = harness(*resume, "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0 and "1 of 2 cells left" in dry.stdout, dry.stderr
    assert len(stored(tmp_path / "s.sqlite")) == 1  # nothing trained or stored
    assert runs(tmp_path / "s.sqlite")[0]["owner_pid"] == proc.pid  # nor claimed
    done = harness(*resume, cwd=tmp_path)
    assert done.returncode == 0 and "1 of 2 cells left" in done.stdout, done.stderr
    assert [c["status"] for c in stored(tmp_path / "s.sqlite")] == ["ok", "ok"]
    assert runs(tmp_path / "s.sqlite")[0]["status"] == "finished"


# ---- a signal at any moment ---------------------------------------------------------------------

SIGNAL_AT = """
import os, signal, sys
from harness import cli, runner
from harness.cli import commands
signum = getattr(signal, sys.argv[1])
where = sys.argv[2]
def fire(*args, **kwargs):
    os.kill(os.getpid(), signum)
if where == "report":
    commands.write_report = fire
elif where == "shutdown":
    real = runner.Runner.shutdown
    def shutdown(self, kill=False):
        if not kill:
            fire()
        real(self, kill)
    runner.Runner.shutdown = shutdown
elif where == "parse":
    real_build = cli.build_parser
    def build_parser():
        fire()
        return real_build()
    cli.build_parser = build_parser
sys.exit(cli.main(sys.argv[3:]))
"""


def _signal_at(tmp_path: Path, signum: str, where: str, *args: str) -> Any:
    return subprocess.run(
        [sys.executable, "-c", SIGNAL_AT, signum, where, *args],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.mark.parametrize("signum, code", [("SIGTERM", 143), ("SIGHUP", 129)])
def test_a_signal_while_the_report_is_written_is_one_line(
    tmp_path: Path, signum: str, code: int
) -> None:
    """The run is stored and ``finished``; the report is not written: its code, one line that
    says how to finish (a resume with nothing left writes the report)."""
    out = _signal_at(tmp_path, signum, "report", "run", *FAST, "--quick", "--store", "s.sqlite")
    assert out.returncode == code, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and f"interrupted ({signum})" in lines[0] and "--resume" in lines[0]
    assert runs(tmp_path / "s.sqlite")[0]["status"] == "finished"


def test_a_signal_while_workers_shut_down_keeps_a_complete_run_finished(tmp_path: Path) -> None:
    """Every cell stored, then SIGTERM while the idle workers are closed: exit 143, one line,
    and the run is ``finished``, not ``interrupted``."""
    out = _signal_at(
        tmp_path, "SIGTERM", "shutdown", "run", *FAST, "--quick", "--no-report", "--store", "s"
    )
    assert out.returncode == 143, out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert runs(tmp_path / "s")[0]["status"] == "finished"
    assert len(stored(tmp_path / "s")) == 2


def test_a_signal_during_start_up_is_one_line(tmp_path: Path) -> None:
    """SIGINT while the command line is being read (the first moments of the process): exit
    130 with one line, no ``KeyboardInterrupt`` traceback, nothing started."""
    out = _signal_at(tmp_path, "SIGINT", "parse", "run", *FAST, "--store", "s")
    assert out.returncode == 130, out.stderr
    assert out.stderr.strip() == "harness: interrupted (SIGINT)"
    assert not (tmp_path / "s").exists()


SLOW_IMPORT_PLUGIN = """
import os, signal
from harness.hookspecs import hookimpl
from harness.registry import DatasetInfo

def load(spec):
    try:  # a library that turns everything during its import into its own error
        os.kill(os.getpid(), signal.SIGINT)
        import time; time.sleep(5)
    except BaseException as exc:
        raise ImportError(f"library failed to import: {exc!r}") from None

@hookimpl
def harness_register_datasets(register):
    register(DatasetInfo("slowimport", "slow_import_plugin:load", "tests only"))
"""


def test_a_signal_while_a_dataset_library_imports_is_an_interruption(tmp_path: Path) -> None:
    """SIGINT while a dataset's library imports (and that library wraps the interruption in
    an ImportError): exit 130 "interrupted", not exit 2 "dataset failed to load"."""
    (tmp_path / "slow_import_plugin.py").write_text(SLOW_IMPORT_PLUGIN)
    env = {
        "HARNESS_PLUGINS": f"{os.environ['HARNESS_PLUGINS']},slow_import_plugin",
        "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ['PYTHONPATH']}",
    }
    out = harness("run", "--suite", "tiny", "--backend", "fake", "--dataset", "slowimport",
                  cwd=tmp_path, env=env)  # fmt: skip
    assert out.returncode == 130, out.stderr
    assert out.stderr.strip() == "harness: interrupted (SIGINT)"
