"""Fuzz the command line: whatever the arguments, ``harness`` exits 0 or 2, never a traceback.

``harness.cli.main`` runs in-process on argument lists built from realistic tokens (sub-commands,
option names, valid and invalid values, config files, odd text). Everything up to the point
where cells would start runs for real (option checks, dataset loading, the store); the cells
themselves and downloads are replaced by no-ops, so nothing trains and nothing leaves the
machine. A generated config file is fuzzed the same way.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import harness.data.download as data_download
import harness.report as report_module
from harness import cli, resume
from harness.cli import commands
from harness.config import apply_config, option_kinds
from harness.errors import HarnessError
from harness.store import Store

COMMANDS = ["run", "report", "list", "runs", "data", "download"]
NUMBERS = ["0", "1", "2", "3", "-1", "1e-3", "0.5", "nan", "inf", "-inf", "1e309", "10**9"]
NUMBERS += ["99999999999999999999", "100000", "0x10", "", " ", "1_000", "1601", "4000"]
VALUES = {
    "--suite": ["tiny", "bn-vs-nobn", "nope", ""],
    "--backend": ["fake", "all", "fake,torch", "torch", "fake,fake", "nope", ",", ""],
    "--device": ["cpu", "gpu", "all", "tpu"],
    "--dataset": ["synthetic", "mnist-5k", "mnist", "cifar10", "nope"],
    "--data-dir": ["adir", "missing", "afile", "."],
    "--epochs": NUMBERS,
    "--seeds": NUMBERS,
    "--batch-size": NUMBERS,
    "--lr": NUMBERS,
    "--limit": ["1", "10", "100", "0", "-5", "x"],
    "--threads": NUMBERS,
    "--cell-timeout": NUMBERS,
    "--init": ["canonical", "native", "zeros"],
    "--out": ["out", "afile", "adir", "afile/x"],
    "--store": ["s.sqlite", "junk.sqlite", "afile/x", "new.sqlite", "adir"],
    "--resume": ["RUN", "latest", "nope"],
    "--config": ["good.toml", "bad.toml", "unknown.toml", "missing.toml", "adir"],
}
FLAGS = ["--standardize", "--quick", "--no-report", "--help", "-h", "--"]
OTHER = ["latest", "RUN", "download", "mnist", "synthetic", "cifar10", "nope", "--data-dir"]
SAFE_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\~\x00"),
    max_size=12,
)
TOKEN = st.one_of(
    st.sampled_from(
        COMMANDS + list(VALUES) + FLAGS + OTHER + [v for vs in VALUES.values() for v in vs]
    ),
    SAFE_TEXT,
)
OPTION = st.one_of(
    st.sampled_from(list(VALUES)).flatmap(
        lambda o: st.tuples(st.just(o), st.one_of(st.sampled_from(VALUES[o]), TOKEN))
    ),
    st.sampled_from(FLAGS).map(lambda f: (f,)),
    st.sampled_from(list(VALUES)).map(lambda o: (o,)),  # an option missing its value
)
BASE = ["--suite", "tiny", "--backend", "fake", "--dataset", "synthetic", "--store", "s.sqlite"]


def _flat(base: list[str], options: list[tuple[str, ...]]) -> list[str]:
    return [*base, *(token for option in options for token in option)]


RUN_ARGV = st.tuples(st.sampled_from([[], BASE]), st.lists(OPTION, max_size=5)).map(
    lambda t: ["run", *_flat(*t)]
)
OTHER_ARGV = st.tuples(st.sampled_from(COMMANDS), st.lists(TOKEN, max_size=6)).map(
    lambda t: [t[0], *t[1]]
)
ARGV = st.one_of(RUN_ARGV, RUN_ARGV, OTHER_ARGV, st.lists(TOKEN, max_size=6))


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder with config files and stores; no cells run, nothing downloads."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HARNESS_DATA_DIR", raising=False)
    monkeypatch.delenv("HARNESS_STORE", raising=False)
    (tmp_path / "home").mkdir()
    (tmp_path / "good.toml").write_text(
        'suite = "tiny"\nbackend = "fake"\ndataset = "synthetic"\nquick = true\n'
    )
    (tmp_path / "bad.toml").write_text("suite = \n")
    (tmp_path / "unknown.toml").write_text("suit = 'tiny'\n")
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x")
    (tmp_path / "junk.sqlite").write_bytes(b"\x00garbage" * 512)
    no_cells = lambda *args, **kwargs: 0  # noqa: E731
    monkeypatch.setattr(commands, "execute", no_cells)
    monkeypatch.setattr(resume, "execute", no_cells)
    monkeypatch.setattr(data_download, "download", lambda *args, **kwargs: [])
    monkeypatch.setattr(report_module, "build_report", lambda *args: Path("out/report.md"))
    assert cli.main(["run", *BASE, "--quick"]) == 0  # a stored run (with no cells) for --resume
    return tmp_path


def _exit_code(argv: list[str]) -> int:
    try:
        return cli.main(argv)
    except SystemExit as exc:  # argparse: --help (0) and usage errors (2)
        return int(exc.code or 0)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(argv=ARGV)
def test_any_arguments_exit_0_or_2(
    sandbox: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    run_id = Store(sandbox / "s.sqlite").latest_run_id()
    argv = [run_id if token == "RUN" else token for token in argv]
    code = _exit_code(argv)
    err = capsys.readouterr().err
    event(f"{argv[0] if argv else '(none)'} -> {code}")
    assert code in (0, 2), (argv, code, err)
    assert "Traceback" not in err
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("harness: error:"), (argv, err)


CONFIG_VALUE = st.one_of(
    st.integers(-5, 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    SAFE_TEXT,
    st.lists(SAFE_TEXT, max_size=3),
)
CONFIG_KEY = st.sampled_from(
    ["suite", "backend", "epochs", "batch_size", "batch-size", "lr", "quick", "seeds", "nope"]
)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(str(value), repr(value))
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return str(value)


@settings(max_examples=150, deadline=None)
@given(
    lines=st.lists(
        st.one_of(
            st.tuples(CONFIG_KEY, CONFIG_VALUE).map(lambda kv: f"{kv[0]} = {_toml_value(kv[1])}"),
            SAFE_TEXT,
        ),
        max_size=5,
    )
)
def test_any_config_file_loads_or_is_one_harness_error(
    tmp_path_factory: pytest.TempPathFactory, lines: list[str]
) -> None:
    path = tmp_path_factory.mktemp("cfg") / "c.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    parser = cli.build_parser()
    args = argparse.Namespace(**{k: None for k in option_kinds(cli.run_parser(parser))})
    try:
        apply_config(args, str(path), option_kinds(cli.run_parser(parser)))
    except HarnessError as exc:
        assert str(exc).startswith(str(path)) and "\n" not in str(exc)


# ---- crafted results.json files and stores: report and compare for real ----------------------

REFERENCE_JSON = Path(__file__).resolve().parents[1] / "reports" / "bn-vs-nobn" / "results.json"
JSON_VALUE = st.one_of(
    st.sampled_from([None, "", "x", "../../x", "/abs", 0, -1, 1.5, True, [], {}, [1], {"a": 1}]),
    st.recursive(st.none() | st.integers() | st.text(max_size=5), st.lists, max_leaves=4),
)
JSON_PATH = st.sampled_from(
    [
        (), ("version",), ("run_id",), ("suite",), ("status",), ("settings",), ("env",),
        ("cells",), ("findings",), ("settings", "seeds"), ("settings", "data"),
        ("settings", "backends"), ("settings", "epochs"), ("settings", "lr"),
        ("cells", 0), ("cells", 0, "settings"), ("cells", 0, "result"), ("cells", 0, "epochs"),
        ("cells", 0, "status"), ("cells", 0, "cell_id"), ("cells", 0, "settings", "train"),
        ("cells", 0, "settings", "point"),
    ]
)  # fmt: skip


def _crafted(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    """``data`` with the value at ``path`` replaced (or deleted when ``value`` is ...)."""
    if not path:
        return value
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is ...:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    path=JSON_PATH,
    value=st.one_of(JSON_VALUE, st.just(...)),
    command=st.sampled_from(["report", "compare"]),
)
def test_report_and_compare_of_any_crafted_results_json_exit_0_or_2(
    tmp_path_factory: pytest.TempPathFactory, path: tuple[Any, ...], value: Any, command: str
) -> None:
    """A results.json with any field replaced or removed: a report or a comparison, or one
    ``harness: error:`` line (exit 2); never a traceback, never a file outside the folder."""
    folder = tmp_path_factory.mktemp("crafted")
    data = json.loads(REFERENCE_JSON.read_text())
    if not path and value is ...:
        value = None
    try:
        crafted = _crafted(data, path, value)
    except (KeyError, IndexError, TypeError):
        return
    (folder / "x.json").write_text(json.dumps(crafted))
    argv = ["report", str(folder / "x.json"), "--out", str(folder / "out")]
    if command == "compare":
        argv = ["compare", str(folder / "x.json"), str(REFERENCE_JSON)]
    event(command)
    assert _exit_code(argv) in (0, 2)


@settings(max_examples=40, deadline=None)
@given(
    column=st.sampled_from(["runs.settings", "runs.env", "cells.spec", "cells.result"]),
    text=st.one_of(st.sampled_from(["null", "[]", "{", "1", '"x"', "{}"]), st.text(max_size=8)),
)
def test_report_and_compare_of_a_damaged_store_exit_0_or_2(
    tmp_path_factory: pytest.TempPathFactory, column: str, text: str
) -> None:
    """A results file whose JSON columns hold anything: exit 0 or 2, never a traceback."""
    folder = tmp_path_factory.mktemp("store")
    path = folder / "s.sqlite"
    store = Store(path)
    cell = {"cell_id": "c", "backend": "fake", "device": "cpu", "variant": "v", "status": "ok"}
    store.create_run("r", "tiny", {"suite": "tiny"}, {})
    spec = json.loads(REFERENCE_JSON.read_text())["cells"][0]["settings"]
    spec = {**{k: spec[k] for k in ("model", "train", "data")}, "extra": {}}
    store.put_cell("r", {**cell, "spec": spec, "result": {}})
    store.set_run_status("r", "finished")
    table, name = column.split(".")
    store.conn.execute(f"UPDATE {table} SET {name}=?", (text,))
    store.close()
    for argv in (["report", "r", "--out", str(folder / "o")], ["compare", "r", "r"]):
        assert _exit_code([*argv, "--store", str(path)]) in (0, 2)
