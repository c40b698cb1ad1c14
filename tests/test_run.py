"""End to end through the ``harness`` command: runs, reports, determinism, bad input."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HARNESS = [sys.executable, "-m", "harness.cli"]


def harness(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run the CLI in ``cwd`` (its reports/ folder is then the default store)."""
    return subprocess.run(
        [*HARNESS, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def results(cwd: Path) -> dict[str, Any]:
    """The results.json of the single run under ``cwd``."""
    (path,) = (cwd / "reports" / "runs").glob("*/results.json")
    return json.loads(path.read_text())


def metrics(data: dict[str, Any]) -> dict[str, list[tuple[float, ...]]]:
    """Per cell: the epoch metrics that must be reproducible (times excluded)."""
    keys = ("train_loss", "val_loss", "val_acc")
    return {c["cell_id"]: [tuple(e[k] for k in keys) for e in c["epochs"]] for c in data["cells"]}


def test_fake_run_writes_store_report_and_json(tmp_path: Path) -> None:
    out = harness(
        "run", "--suite", "tiny", "--backend", "fake", "--dataset", "synthetic", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    data = results(tmp_path)
    assert {"run_id", "suite", "env", "cells"} <= set(data)
    assert len(data["cells"]) == 2 * 2 * 2  # variants x lrs x seeds
    for cell in data["cells"]:
        assert cell["status"] == "ok" and cell["backend"] == "fake" and cell["device"] == "cpu"
        assert len(cell["epochs"]) == 2
        assert set(cell["epochs"][0]) >= {
            "epoch",
            "train_loss",
            "train_acc",
            "val_loss",
            "val_acc",
            "time_s",
        }
        assert cell["settings"]["train"]["lr"] in (0.05, 0.1)
    report = next((tmp_path / "reports" / "runs").glob("*/report.md")).read_text()
    assert "## Summary" in report and "synthetic" in report and "curves.png" in report


def test_same_seed_same_metrics_other_seed_differs(tmp_path: Path) -> None:
    runs = []
    for name, seeds in (("a", "2"), ("b", "2")):
        (tmp_path / name).mkdir()
        out = harness(
            "run",
            "--suite",
            "tiny",
            "--backend",
            "fake",
            "--dataset",
            "synthetic",
            "--quick",
            "--seeds",
            seeds,
            cwd=tmp_path / name,
        )
        assert out.returncode == 0, out.stderr
        runs.append(metrics(results(tmp_path / name)))
    assert runs[0] == runs[1]
    seed0 = [v for k, v in runs[0].items() if k.endswith("seed=0")]
    seed1 = [v for k, v in runs[0].items() if k.endswith("seed=1")]
    assert seed0 and all(a != b for a, b in zip(seed0, seed1))


def test_report_rebuilds_from_store(tmp_path: Path) -> None:
    assert (
        harness(
            "run",
            "--suite",
            "tiny",
            "--backend",
            "fake",
            "--dataset",
            "synthetic",
            "--quick",
            "--no-report",
            cwd=tmp_path,
        ).returncode
        == 0
    )
    assert not list((tmp_path / "reports" / "runs").glob("*/report.md"))
    out = harness("report", "latest", "--out", str(tmp_path / "rebuilt"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "rebuilt" / "report.md").exists()
    assert (tmp_path / "rebuilt" / "curves.png").stat().st_size > 10_000


@pytest.mark.parametrize(
    "args, valid",
    [
        (["run", "--suite", "nope"], "bn-vs-nobn"),
        (["run", "--suite", "tiny", "--backend", "nope"], "torch"),
        (["run", "--suite", "tiny", "--backend", "fake", "--dataset", "nope"], "mnist-5k"),
        (["run", "--suite", "tiny", "--backend", "fake", "--device", "tpu"], "gpu"),
        (["run", "--suite", "tiny", "--backend", "fake", "--init", "zeros"], "native"),
        (["run", "--suite", "tiny", "--epochs", "0"], "positive"),
        (["run", "--suite", "tiny", "--lr", "-1"], "positive"),
        (["run", "--suite", "tiny", "--backend", "fake", "--executor", "slurm"], "local, ray"),
        (["run", "--suite", "tiny", "--ray-address", "auto"], "for --executor ray"),
        (["report", "no-such-run"], "runs"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], valid: str) -> None:
    out = harness(*args, cwd=tmp_path)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("harness: error:") and valid in lines[0]


@pytest.mark.slow
def test_torch_bn_vs_nobn_on_mnist_5k(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    out = harness(
        "run",
        "--suite",
        "bn-vs-nobn",
        "--backend",
        "torch",
        "--epochs",
        "2",
        "--seeds",
        "1",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "using mnist-5k" in out.stderr
    data = results(tmp_path)
    assert {c["variant"] for c in data["cells"]} == {"no-bn", "bn"}
    for cell in data["cells"]:
        assert cell["status"] == "ok"
        assert cell["result"]["dataset"] == {
            **cell["result"]["dataset"],
            "name": "mnist-5k",
            "train": 4000,
            "val": 1000,
        }
        assert cell["epochs"][-1]["val_acc"] > 0.8  # chance is 0.1
    report = next((tmp_path / "reports" / "runs").glob("*/report.md")).read_text()
    assert "using mnist-5k" in report


def installed_harness() -> str:
    """The installed ``harness`` console script (it does not put the current folder on sys.path,
    unlike ``python -m harness.cli``)."""
    script = Path(sys.executable).with_name("harness")
    if not script.exists():
        pytest.skip(f"no console script next to {sys.executable}")
    return str(script)


def plant_decoy(folder: Path) -> None:
    """A ``harness/`` package in ``folder`` that fails whoever imports it."""
    (folder / "harness").mkdir()
    (folder / "harness" / "__init__.py").write_text("raise ImportError('decoy harness/')\n")


def test_a_harness_folder_in_the_current_folder_does_not_shadow_the_package(
    tmp_path: Path,
) -> None:
    # A checkout has harness/ at its top but keeps the backends in backends/: a worker that
    # imported the folder's copy instead of the installed package lost the built-in backends.
    plant_decoy(tmp_path)
    argv = ["run", "--suite", "tiny", "--backend", "fake", "--dataset", "synthetic", "--quick"]
    out = subprocess.run(
        [installed_harness(), *argv], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    data = results(tmp_path)
    assert data["cells"] and all(c["status"] == "ok" for c in data["cells"]), data["cells"]


def test_a_checkout_imported_directly_keeps_its_backends_suites_and_baselines(
    tmp_path: Path,
) -> None:
    # `python -m harness.cli` started in a checkout imports the checkout's harness/ ahead of the
    # installed package; its adapters, suites and baselines live beside harness/ (backends/,
    # suites/, baselines/), where pyproject maps them. A copy of the source tree, not installed,
    # must import as the same package tree the wheel installs.
    root = Path(__file__).resolve().parents[1]
    import shutil

    for name in ("harness", "backends", "suites", "baselines"):
        shutil.copytree(root / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(root / "pyproject.toml", tmp_path)
    probe = (
        "import harness, harness.baselines as b\n"
        "from harness.plugins import make_plugins\n"
        "p = make_plugins(entry_points=False)\n"
        "print(harness.__file__); print(sorted(p.backends.names())); print(p.failures)\n"
        "print(b.find('torch', 'expert')); print('bn-vs-nobn' in p.suites.names())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "HARNESS_PLUGINS"}
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert out.returncode == 0, out.stderr
    where, names, failures, baseline, suite = out.stdout.splitlines()
    assert where == str(tmp_path / "harness" / "__init__.py")
    assert {"torch", "keras", "keras-jax", "keras-torch", "jax"} <= set(eval(names))
    assert failures == "{}"
    assert baseline == str(tmp_path / "baselines" / "torch_expert.py")
    assert suite == "True"
    listed = subprocess.run(
        [sys.executable, "-m", "harness.cli", "list"], cwd=tmp_path, capture_output=True,
        text=True, env=env,
    )
    assert listed.returncode == 0, listed.stderr
    assert "keras-torch" in listed.stdout and "bn-vs-nobn" in listed.stdout


@pytest.mark.slow
def test_the_quickstart_runs_in_the_checkout(tmp_path: Path) -> None:
    # The README's Quickstart installs the package (not editable) and runs `harness` from the
    # checkout's own folder.
    pytest.importorskip("torch")
    root = Path(__file__).resolve().parents[1]
    argv = ["run", "--suite", "bn-vs-nobn", "--backend", "torch", "--quick", "--limit", "600"]
    out = subprocess.run(
        [installed_harness(), *argv, "--out", str(tmp_path / "out")],
        cwd=root,
        env={**os.environ, "HARNESS_STORE": str(tmp_path / "store.sqlite")},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert {c["variant"] for c in data["cells"]} == {"no-bn", "bn"}
    assert all(c["status"] == "ok" for c in data["cells"]), [c["reason"] for c in data["cells"]]


def test_compare_shows_what_changed_between_two_runs(tmp_path: Path) -> None:
    tiny = ("run", "--suite", "tiny", "--backend", "fake", "--dataset", "synthetic", "--quick")
    for extra in ((), (), ("--batch-size", "25")):
        assert harness(*tiny, "--seeds", "2", *extra, cwd=tmp_path).returncode == 0
    first, second, third = (
        json.loads(p.read_text())["run_id"]
        for p in sorted(
            (tmp_path / "reports" / "runs").glob("*/results.json"), key=lambda p: p.stat().st_mtime
        )
    )
    same = harness("compare", first, second, cwd=tmp_path)
    assert same.returncode == 0, same.stderr
    assert "## Settings and environment that differ\n\nNone." in same.stdout
    rows = [line for line in same.stdout.splitlines() if line.startswith("| fake ")]
    assert len(rows) == 2 and all("| yes " in r and "| +0.00 " in r for r in rows), rows
    results = tmp_path / "reports" / "runs" / third / "results.json"
    other = harness("compare", first, str(results), "--out", "cmp.md", cwd=tmp_path)
    assert other.returncode == 0, other.stderr
    assert (tmp_path / "cmp.md").read_text() == other.stdout
    default = r"^\| settings\.\S*batch_size +\| 50 \(suite default\) +\| 25 "
    assert re.search(default, other.stdout, re.M)
    rows = [line for line in other.stdout.splitlines() if line.startswith("| fake ")]
    assert len(rows) == 2 and all("| 0/2 seeds " in r for r in rows), rows
    bad = harness("compare", first, "no-such-run", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and first in bad.stderr


ATTACKER_BASELINE = """
from pathlib import Path
Path(__file__).with_name("ran").write_text("attacker code ran")
def prepare(*args, **kwargs):
    raise RuntimeError("attacker baseline")
"""


def test_baselines_are_never_loaded_from_the_current_folder(tmp_path: Path) -> None:
    """Running the timing suite in a folder someone else controls must not run their
    ``baselines/*.py``: the baselines are loaded from the installed package only."""
    planted = tmp_path / "baselines"
    planted.mkdir()
    for kind in ("expert", "tutorial"):
        (planted / f"fake_{kind}.py").write_text(ATTACKER_BASELINE)
    argv = ["run", "--suite", "timing", "--backend", "fake", "--dataset", "synthetic"]
    env = {k: v for k, v in os.environ.items() if k != "HARNESS_BASELINES"}
    out = subprocess.run(
        [sys.executable, "-m", "harness.cli", *argv, "--quick", "--no-report"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert not (planted / "ran").exists()
