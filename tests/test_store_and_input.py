"""Reliability of what goes in and what stays: concurrent writers and schema versions of the
results file, bad options and config files, damaged or untrusted dataset files, missing
frameworks. Every refusal is one ``harness: error:`` line and exit 2, before any worker starts.

Helpers (running the CLI, reading the store) come from ``test_reliability``.
"""

from __future__ import annotations

import json
import os
import pickle
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from test_data import Evil, cifar_batches, write_cifar_tar, write_mnist_idx
from test_reliability import FAST, harness, one_line_error, runs, start, stored

from harness import cli
from harness.cli import commands
from harness.plugins import make_plugins
from harness.store import SCHEMA_VERSION, Store

# ---- the store -------------------------------------------------------------------------------

WRITER = """
import sys
from harness.store import Store
store = Store(sys.argv[1])
run = sys.argv[2]
store.create_run(run, "s", {}, {})
for i in range(int(sys.argv[3])):
    cell = {"cell_id": f"c{i}", "backend": "b", "device": "cpu", "variant": "v",
            "status": "ok", "spec": {}, "result": {"i": i}}
    store.put_cell(run, cell)
store.set_run_status(run, "finished")
"""


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    """Four processes create and fill one new results file at once: every row arrives."""
    path = tmp_path / "s.sqlite"
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), f"r{i}", "60"]) for i in range(4)
    ]
    assert [w.wait(timeout=120) for w in writers] == [0] * 4
    rows = stored(path)
    assert len(rows) == 240
    assert {(r["run_id"], r["result"]["i"]) for r in rows} == {
        (f"r{i}", j) for i in range(4) for j in range(60)
    }


def test_two_harness_runs_share_one_store(tmp_path: Path) -> None:
    """Two ``harness run`` processes writing the same results file both complete."""
    procs = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        args = ("run", *FAST, "--no-report", "--store", str(tmp_path / "s.sqlite"))
        procs.append(start(*args, cwd=tmp_path / name))
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    both = runs(tmp_path / "s.sqlite")
    assert [r["status"] for r in both] == ["finished", "finished"]
    rows = stored(tmp_path / "s.sqlite")
    for run in both:
        mine = [r for r in rows if r["run_id"] == run["run_id"]]
        assert len(mine) == 8 and {r["status"] for r in mine} == {"ok"}


V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (run_id TEXT PRIMARY KEY, suite TEXT NOT NULL, created REAL NOT NULL,
    status TEXT NOT NULL, settings TEXT NOT NULL, env TEXT NOT NULL);
CREATE TABLE cells (run_id TEXT NOT NULL REFERENCES runs(run_id), cell_id TEXT NOT NULL,
    backend TEXT NOT NULL, device TEXT NOT NULL, variant TEXT NOT NULL,
    status TEXT NOT NULL, spec TEXT NOT NULL, result TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '', stderr_tail TEXT NOT NULL DEFAULT '',
    finished REAL NOT NULL, PRIMARY KEY (run_id, cell_id));
INSERT INTO meta VALUES ('schema_version', '1');
INSERT INTO runs VALUES ('old', 'tiny', 100.0, 'finished', '{}', '{}');
INSERT INTO runs VALUES ('cut', 'tiny', 200.0, 'running', '{}', '{}');
INSERT INTO cells VALUES ('old', 'c1', 'b', 'cpu', 'v', 'ok', '{}', '{"x": 1}', '', '', 150.0);
"""


def test_version_1_file_is_migrated(tmp_path: Path) -> None:
    """A file written by schema 1 opens: rows kept, ``stopped`` back-filled, index added."""
    path = tmp_path / "v1.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(V1_SCHEMA)
    conn.close()
    store = Store(path)
    version = store.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    assert int(version[0]) == SCHEMA_VERSION == 3
    columns = {r[1] for r in store.conn.execute("PRAGMA table_info(runs)")}
    assert {"owner_host", "owner_pid", "owner_start", "heartbeat"} <= columns
    stopped = dict(store.conn.execute("SELECT run_id, stopped FROM runs").fetchall())
    assert stopped == {"old": 150.0, "cut": None}
    indexes = [
        r[0] for r in store.conn.execute("SELECT name FROM sqlite_master WHERE type='index'")
    ]
    assert "cells_by_status" in indexes
    assert store.cells("old")[0]["result"] == {"x": 1}
    store.close()
    listing = harness("runs", "--store", str(path), cwd=tmp_path)
    assert listing.returncode == 0 and "old" in listing.stdout and "cut" in listing.stdout


def test_newer_file_is_refused(tmp_path: Path) -> None:
    """A results file from a newer harness: one line, exit 2, for every command."""
    path = tmp_path / "new.sqlite"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"UPDATE meta SET value='{SCHEMA_VERSION + 1}' WHERE key='schema_version'")
    conn.commit()
    conn.close()
    for args in (["runs"], ["report"], ["run", *FAST]):
        out = harness(*args, "--store", str(path), cwd=tmp_path)
        newer = SCHEMA_VERSION + 1
        one_line_error(out, f"schema version {newer}, newer than this harness ({SCHEMA_VERSION})")


# ---- bad input ---------------------------------------------------------------------------------

BAD_RUNS = [
    (["--limit", "10", "--batch-size", "50"], "batch size 50 is larger than the 10 training"),
    (["--limit", "20"], "batch size 50 is larger than the 20 training samples"),  # suite's own
    (["--data-dir", "{tmp}/nope"], "nope does not exist"),
    (["--seeds", "100000"], "at most 1000 seeds"),
    (["--batch-size", "-3"], "expected a positive integer, got '-3'"),
    (["--batch-size", "0"], "expected a positive integer, got '0'"),
    (["--epochs", "-2"], "expected a positive integer, got '-2'"),
    (["--lr", "0"], "expected a positive number, got '0'"),
    (["--lr", "nan"], "expected a positive number, got 'nan'"),
    (["--cell-timeout", "0"], "expected a positive number"),
    (["--out", "{tmp}/afile"], "cannot create report folder"),
    (["--store", "{tmp}/afile/x.sqlite"], "cannot open results file"),
    (["--config", "{tmp}/missing.toml"], "cannot read config file"),
]


@pytest.mark.parametrize("extra, message", BAD_RUNS)
def test_bad_run_input_is_one_line_exit_2(tmp_path: Path, extra: list[str], message: str) -> None:
    (tmp_path / "afile").write_text("x")
    args = [a.format(tmp=tmp_path) for a in extra]
    one_line_error(harness("run", *FAST, *args, cwd=tmp_path), message)
    assert not (tmp_path / "reports").exists()  # refused before any store or worker


def test_no_suite_and_broken_store_are_one_line(tmp_path: Path) -> None:
    one_line_error(harness("run", "--backend", "fake", cwd=tmp_path), "no --suite given")
    (tmp_path / "junk.sqlite").write_bytes(os.urandom(4096))
    one_line_error(
        harness("runs", "--store", "junk.sqlite", cwd=tmp_path), "not a usable harness results"
    )
    one_line_error(harness("report", "--store", "none.sqlite", cwd=tmp_path), "no results file")


def test_truncated_idx_through_the_cli(tmp_path: Path) -> None:
    """A truncated MNIST file is named with its expected checksum before any worker starts."""
    write_mnist_idx(tmp_path / "data")
    images = tmp_path / "data" / "train-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:100])
    args = ("--suite", "tiny", "--backend", "fake", "--dataset", "mnist", "--data-dir", "data")
    one_line_error(
        harness("run", *args, cwd=tmp_path),
        str(images),
        "expected md5 f68b3c2dcbeaaa9fbdd348bbdeb94873",
    )
    assert not (tmp_path / "reports").exists()


def test_planted_pickle_through_the_cli_runs_no_code(tmp_path: Path) -> None:
    """A CIFAR-10 archive carrying a code-running pickle is refused (see also test_data.py's
    test_malicious_pickle_refused_by_checksum_and_by_unpickler for the unpickler itself)."""
    marker = tmp_path / "pwned"
    files = {**cifar_batches(), "data_batch_1": pickle.dumps(Evil(marker), protocol=2)}
    write_cifar_tar(tmp_path / "data" / "cifar-10-python.tar.gz", files)
    args = ("--suite", "tiny", "--backend", "fake", "--dataset", "cifar10", "--data-dir", "data")
    one_line_error(harness("run", *args, cwd=tmp_path), "cifar-10-python.tar.gz: expected sha256")
    assert not marker.exists()


CONFIG_ERRORS = [
    ("suite = 'tiny'\nepochs = \n", "invalid TOML: Invalid value (at line 2, column 10)"),
    ("suite = 'tiny'\nepoch = 3\n", "line 2: unknown key 'epoch'; valid keys: backend, batch_size"),
    ("suite = 'tiny'\n\nepochs = -1\n", "line 3: epochs: expected a positive integer, got '-1'"),
    ("epochs = 'three'\n", "line 1: epochs: expected a number, got 'three'"),
    ("lr = 0.0\n", "line 1: lr: expected a positive number"),
    ("quick = 1\n", "line 1: quick: expected true or false, got 1"),
    ("backend = 3\n", "line 1: backend: expected a string, got 3"),
    ("batch_size = 2\nbatch-size = 3\n", "line 2: 'batch-size' is set twice"),
    ("[run]\nepochs = 2\n", "line 1: unknown key 'run'"),
    (b"suite = 'tiny'\n\xff\n", "line 2: not UTF-8 text"),
]


@pytest.mark.parametrize("text, message", CONFIG_ERRORS)
def test_bad_config_file_names_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str | bytes, message: str
) -> None:
    path = tmp_path / "cfg.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    assert cli.main(["run", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"harness: error: {path}") and message in err and "\n" not in err


def test_config_file_runs_and_the_command_line_wins(tmp_path: Path) -> None:
    (tmp_path / "cfg.toml").write_text(
        'suite = "tiny"\nbackend = ["fake"]\ndataset = "synthetic"\n'
        'quick = true\nno-report = true\nseeds = 3\nstore = "s.sqlite"\n'
    )
    out = harness("run", "--config", "cfg.toml", "--seeds", "1", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    (run,) = runs(tmp_path / "s.sqlite")
    assert json.loads(run["settings"])["seeds"] == 1 and len(stored(tmp_path / "s.sqlite")) == 2
    one_line_error(harness("run", "--config", "dir", cwd=tmp_path), "cannot read config file")


@pytest.mark.slow
def test_batch_size_one_with_bn_is_the_frameworks_call(tmp_path: Path) -> None:
    """PyTorch refuses BN on one sample in training: that cell fails with torch's reason, the
    run goes on and the report says why; the harness does not crash."""
    pytest.importorskip("torch")
    args = ("--suite", "tiny", "--backend", "torch", "--dataset", "synthetic", "--quick")
    out = harness("run", *args, "--batch-size", "1", "--limit", "6", "--out", "rep", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    cells = {c["variant"]: c for c in stored(tmp_path / "reports/runs/results.sqlite")}
    assert cells["no-bn"]["status"] == "ok"
    assert cells["bn"]["status"] == "failed"
    assert "Expected more than 1 value per channel when training" in cells["bn"]["reason"]
    report = (tmp_path / "rep" / "report.md").read_text()
    assert "Expected more than 1 value per channel" in report


# ---- missing frameworks ------------------------------------------------------------------------


def test_missing_framework_is_listed_skipped_and_refused(tmp_path: Path) -> None:
    ghost = {"FAKE_GHOST": "1"}
    listing = harness("list", env=ghost, cwd=tmp_path)
    line = next(x for x in listing.stdout.splitlines() if x.startswith("ghost"))
    assert "unavailable" in line and "pip install 'bn-harness[ghost]'" in line
    for backend in ("ghost", "fake,ghost"):
        out = harness("run", "--suite", "tiny", "--backend", backend, env=ghost, cwd=tmp_path)
        one_line_error(out, "backend 'ghost' needs ghost_framework", "bn-harness[ghost]")


def test_backend_all_runs_the_rest_and_says_what_it_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--backend all`` with fake (usable) and ghost (missing) registered, and no others."""
    monkeypatch.setenv("FAKE_GHOST", "1")
    monkeypatch.chdir(tmp_path)
    plugins = make_plugins(builtins=("harness.suites", "harness.data.plugin"), entry_points=False)
    assert plugins.backends.names() == ["fake", "ghost"]
    monkeypatch.setattr(commands, "get_plugins", lambda: plugins)
    argv = ["run", "--suite", "tiny", "--dataset", "synthetic", "--quick", "--out", "rep"]
    assert cli.main([*argv, "--backend", "all", "--store", "s.sqlite"]) == 0
    err = capsys.readouterr().err
    assert "harness: skipping backend 'ghost' needs ghost_framework" in err
    assert {c["backend"] for c in stored(tmp_path / "s.sqlite")} == {"fake"}
    (run,) = runs(tmp_path / "s.sqlite")
    assert any("skipping backend 'ghost'" in n for n in json.loads(run["settings"])["notes"])
    report = (tmp_path / "rep" / "report.md").read_text()
    assert "- **Note**: skipping backend 'ghost' needs ghost_framework" in report


# ---- damaged files and untrusted names ---------------------------------------------------------


def _stored_run(tmp_path: Path) -> tuple[Path, str]:
    out = harness("run", *FAST, "--quick", "--no-report", "--store", "s.sqlite", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    return tmp_path / "s.sqlite", runs(tmp_path / "s.sqlite")[0]["run_id"]


@pytest.mark.parametrize(
    "sql, message",
    [
        ("UPDATE meta SET value='2x' WHERE key='schema_version'", "not an integer"),
        ("UPDATE cells SET result='{broken' WHERE rowid=1", "damaged row"),
        ("UPDATE cells SET spec='[1, 2]' WHERE rowid=1", "field 'spec' should be object"),
        ("UPDATE runs SET settings='null'", "field 'settings' should be object"),
    ],
)
def test_a_damaged_store_is_one_line(tmp_path: Path, sql: str, message: str) -> None:
    path, run_id = _stored_run(tmp_path)
    conn = sqlite3.connect(path)
    conn.execute(sql)
    conn.commit()
    conn.close()
    for command in (["report", run_id], ["compare", run_id, run_id]):
        one_line_error(harness(*command, "--store", str(path), cwd=tmp_path), message)


def _results_json(tmp_path: Path) -> dict:
    out = harness("run", *FAST, "--quick", "--out", "rep", "--store", "s.sqlite", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    data = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert data["version"] == 1
    return data


BAD_JSON = [
    (lambda d: d.update(settings=None), "field 'settings' should be object, got null"),
    (lambda d: d.update(cells="abc"), "field 'cells' should be list, got str"),
    (
        lambda d: d["cells"][0].update(epochs={}),
        "cells[0]: field 'epochs' should be a list of dict",
    ),
    (lambda d: d["cells"][0].update(result="x"), "cells[0]: field 'result' should be object"),
    (lambda d: d["settings"].update(seeds="2"), "settings: field 'seeds' should be int"),
    (lambda d: d.update(version=99), "version 99 is newer"),
    (lambda d: d.update(run_id="../../escaped"), "is not a name"),
    (lambda d: d.update(run_id="/tmp/abs"), "is not a name"),
]


def test_a_results_json_with_wrong_types_or_a_path_for_a_name_is_one_line(tmp_path: Path) -> None:
    """Every field read from a results.json is checked; a run id is a name, never a path, so
    ``harness report X.json`` (writing to reports/runs/RUN_ID) cannot write outside it."""
    good = _results_json(tmp_path)
    for i, (damage, message) in enumerate(BAD_JSON):
        data = json.loads(json.dumps(good))
        damage(data)
        (tmp_path / f"bad{i}.json").write_text(json.dumps(data))
        one_line_error(harness("report", f"bad{i}.json", cwd=tmp_path), message)
        one_line_error(harness("compare", f"bad{i}.json", "rep/results.json", cwd=tmp_path))
    assert not (tmp_path / "escaped").exists() and not (tmp_path.parent / "escaped").exists()
    assert not Path("/tmp/abs").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--config", "/dev/zero"], "larger than 1024 KiB"),
        (["--epochs", "1000000000"], "GiB for the batch order"),
        (["--executor", ""], "unknown executor ''; valid: local, ray"),
        (["--executor", "lo\ncal"], "unknown executor 'lo\\ncal'"),
        (["--backend", "fa\nke"], "unknown backend 'fa\\nke'"),
    ],
)
def test_unbounded_or_odd_input_is_refused_in_one_line(
    tmp_path: Path, args: list[str], message: str
) -> None:
    one_line_error(harness("run", *FAST, "--quick", *args, cwd=tmp_path), message)
    assert not (tmp_path / "reports").exists()


def test_output_to_a_closed_pipe_is_no_traceback(tmp_path: Path) -> None:
    """``harness list | head -1``: the reader goes away; no traceback, no noise, exit 1.

    The pipe's read end is closed before ``harness`` starts, so every write fails (with ``| head
    -c 1`` the whole listing can fit in the pipe's buffer before ``head`` exits, and nothing
    fails: CI saw exit 0 once)."""
    read, write = os.pipe()
    os.close(read)
    try:
        out = subprocess.run(
            [sys.executable, "-m", "harness.cli", "list"],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write)
    assert out.stderr == "" and out.returncode == 1
