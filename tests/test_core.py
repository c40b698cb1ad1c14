"""Core pieces without any framework: plugins, registry, specs, init, suites, store."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from harness import hookspecs
from harness.errors import HarnessError, UnknownNameError
from harness.initializers import batch_order, canonical_params
from harness.plugins import BUILTIN_PLUGINS, get_plugins, make_plugins
from harness.specs import CellSpec, ModelSpec, cell_from_dict
from harness.store import SCHEMA_VERSION, Store
from harness.suite import RunOptions, expand

FRAMEWORKS = ("torch", "tensorflow", "keras", "jax", "flax", "optax", "matplotlib", "ray")


@pytest.mark.parametrize(
    "code",
    [
        "import harness, harness.cli, harness.plugins; harness.plugins.get_plugins()",
        "import sys; from harness.cli import main; sys.argv=['harness',"
        "'--help']\ntry: main()\nexcept SystemExit: pass",
    ],
)
def test_core_imports_no_framework(code: str) -> None:
    probe = code + f"\nimport sys; print(sorted(m for m in {FRAMEWORKS!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_every_hook_is_documented() -> None:
    hooks = [name for name in dir(hookspecs) if name.startswith("harness_")]
    assert len(hooks) >= 6
    for name in hooks:
        assert getattr(hookspecs, name).__doc__, name


def test_builtins_register_like_plugins() -> None:
    plugins = get_plugins()
    assert {"torch", "keras", "jax"} <= set(plugins.backends.names())
    assert "bn-vs-nobn" in plugins.suites.names()
    assert {"mnist-5k", "mnist", "cifar10", "digits", "synthetic"} <= set(plugins.datasets.names())
    assert not {k: v for k, v in plugins.failures.items() if k in BUILTIN_PLUGINS}


def test_broken_plugin_is_reported_and_skipped(tmp_path, monkeypatch) -> None:
    (tmp_path / "broken_plugin.py").write_text("raise ImportError('boom: needs foo')\n")
    (tmp_path / "bad_hook.py").write_text(
        "from harness.hookspecs import hookimpl\n"
        "@hookimpl\ndef harness_register_suites(register):\n    raise ValueError('bad hook')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins = make_plugins(BUILTIN_PLUGINS + ("broken_plugin", "bad_hook"), entry_points=False)
    assert "boom" in plugins.failures["broken_plugin"]
    assert "bad hook" in plugins.failures["bad_hook"]
    assert "torch" in plugins.backends.names() and "bn-vs-nobn" in plugins.suites.names()


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(UnknownNameError) as err:
        get_plugins().suites.get("nope")
    assert "bn-vs-nobn" in str(err.value) and "\n" not in str(err.value)


def test_bn_and_nobn_share_the_weights_of_shared_layers() -> None:
    plain = canonical_params(ModelSpec(norm="none"), 4)
    bn = canonical_params(ModelSpec(norm="batchnorm"), 4)
    assert set(plain) < set(bn)
    for name, value in plain.items():
        np.testing.assert_array_equal(bn[name], value)
    assert not np.array_equal(
        canonical_params(ModelSpec(), 5)["dense_0/kernel"], plain["dense_0/kernel"]
    )


def test_batch_order_is_seeded_and_visits_each_sample_once() -> None:
    order = batch_order(1000, 64, 3, seed=1)
    assert order.shape == (3, 15, 64)
    for epoch in order:
        assert len(np.unique(epoch)) == epoch.size
    np.testing.assert_array_equal(order, batch_order(1000, 64, 3, seed=1))
    assert not np.array_equal(order, batch_order(1000, 64, 3, seed=2))
    assert not np.array_equal(order[0], order[1])
    with pytest.raises(ValueError):
        batch_order(10, 64, 1, 0)


def test_suite_expands_to_cells_that_round_trip() -> None:
    suite = get_plugins().suites.get("bn-vs-nobn")
    cells = expand(suite, RunOptions(backends=("torch", "jax"), epochs=2, seeds=2), "r1")
    assert len(cells) == 2 * 2 * 2
    assert len({c.cell_id for c in cells}) == len(cells)
    assert {c.train.epochs for c in cells} == {2}
    assert [c.backend for c in cells[:2]] == ["torch", "jax"]  # interleaved for fairness
    for cell in cells:
        assert isinstance(cell, CellSpec) and cell_from_dict(cell.to_dict()) == cell


def test_store_round_trip_and_schema_guard(tmp_path) -> None:
    store = Store(tmp_path / "r.sqlite")
    store.create_run("r1", "s", {"a": 1}, {"python": "3"})
    spec = {"train": {"seed": 0}}
    store.put_cell(
        "r1",
        {
            "cell_id": "c1",
            "backend": "b",
            "device": "cpu",
            "variant": "v",
            "status": "ok",
            "spec": spec,
            "result": {"epochs": [{"epoch": 1}]},
        },
    )
    assert store.cells("r1")[0]["result"]["epochs"] == [{"epoch": 1}]
    assert store.run("r1")["settings"] == {"a": 1}
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with pytest.raises(HarnessError, match="runs: r1"):
        store.run("r2")
    store.close()
    conn = sqlite3.connect(tmp_path / "r.sqlite")
    conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    conn.commit()
    conn.close()
    with pytest.raises(HarnessError, match="newer"):
        Store(tmp_path / "r.sqlite")


def test_every_package_directory_is_packaged() -> None:
    """A folder with an ``__init__.py`` that pyproject does not list is missing from the wheel
    (the editable install hides this; a fresh ``pip install .`` does not)."""
    import pathlib

    import tomllib

    root = pathlib.Path(__file__).resolve().parents[1]
    tool = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(tool["packages"])
    dirs = {name: root / path for name, path in tool["package-dir"].items()}
    found = set()
    for top, base in dirs.items():
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base).parts
            if "__pycache__" not in rel:
                found.add(".".join((top, *rel)))
    assert found - listed == set(), "add these to [tool.setuptools] packages"
    assert listed - found == set(), "listed but not on disk"
