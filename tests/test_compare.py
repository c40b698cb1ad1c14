"""``harness compare`` as a CI gate: effective settings, interval verdicts, thresholds, exit 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.compare import Match, Thresholds, acc_difference, failures, verdict

HARNESS = [sys.executable, "-m", "harness.cli"]
TINY = ("run", "--suite", "tiny", "--backend", "fake", "--dataset", "synthetic", "--quick")


def harness(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the CLI in ``cwd``."""
    return subprocess.run(
        [*HARNESS, *args], cwd=cwd, capture_output=True, text=True, timeout=600, env=os.environ
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A report's results.json of a 2-seed, 3-epoch tiny run on the fake backend."""
    cwd = tmp_path_factory.mktemp("compare")
    out = harness(*TINY, "--seeds", "2", "--epochs", "3", "--out", "ref", cwd=cwd)
    assert out.returncode == 0, out.stderr
    return cwd / "ref" / "results.json"


def _copy(reference: Path, name: str, change: Any) -> Path:
    """A copy of the reference results.json with ``change(epoch)`` applied to every epoch."""
    data = json.loads(reference.read_text())
    for cell in data["cells"]:
        for epoch in cell["epochs"]:
            change(epoch)
    path = reference.with_name(name)
    path.write_text(json.dumps(data))
    return path


def test_the_same_run_passes_every_threshold(reference: Path) -> None:
    out = harness(
        "compare", str(reference), str(reference), "--max-slowdown", "0",
        "--max-acc-drop", "0", "--fail-on-verdict-change", cwd=reference.parent,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "## Gate\n\n- pass: no threshold exceeded." in out.stdout
    rows = [line for line in out.stdout.splitlines() if line.startswith("| fake ")]
    assert len(rows) == 2 and all("+0.00 [+0.00, +0.00] paired-t" in r for r in rows), rows


def test_a_slower_run_fails_max_slowdown(reference: Path) -> None:
    slower = _copy(reference, "slower.json", lambda e: e.update(time_s=e["time_s"] * 1.5))
    cwd = reference.parent
    out = harness("compare", str(reference), str(slower), "--max-slowdown", "10", cwd=cwd)
    assert out.returncode == 1, out.stderr
    assert out.stdout.count("- FAIL: fake/cpu/") == 2
    assert "50.0% slower in B (--max-slowdown 10)" in out.stdout
    assert out.stderr == "harness: compare: 2 threshold(s) exceeded\n"
    lenient = harness("compare", str(reference), str(slower), "--max-slowdown", "60", cwd=cwd)
    assert lenient.returncode == 0, lenient.stdout
    ungated = harness("compare", str(reference), str(slower), cwd=cwd)
    assert ungated.returncode == 0 and "## Gate" not in ungated.stdout


def test_an_accuracy_drop_fails_max_acc_drop(reference: Path) -> None:
    worse = _copy(reference, "worse.json", lambda e: e.update(val_acc=e["val_acc"] - 0.05))
    cwd = reference.parent
    out = harness("compare", str(reference), str(worse), "--max-acc-drop", "2", cwd=cwd)
    assert out.returncode == 1, out.stderr
    assert "5.00 pp lower in B (--max-acc-drop 2)" in out.stdout
    rows = [line for line in out.stdout.splitlines() if line.startswith("| fake ")]
    assert all("| -5.00 [-5.00, -5.00] paired-t | lower in B |" in r for r in rows), rows
    assert (
        harness("compare", str(worse), str(reference), "--max-acc-drop", "2", cwd=cwd).returncode
        == 0
    )


def test_a_setting_left_to_the_suite_shows_its_value(reference: Path, tmp_path: Path) -> None:
    out = harness(*TINY, "--seeds", "2", "--epochs", "3", "--batch-size", "25", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    cmp = harness("compare", str(reference), "latest", cwd=tmp_path)
    assert cmp.returncode == 0, cmp.stderr
    line = next(x for x in cmp.stdout.splitlines() if "settings.batch_size" in x)
    assert "| 50 (suite default) " in line and "| 25 " in line, line
    rows = [x for x in cmp.stdout.splitlines() if x.startswith("| fake ")]
    assert rows and all(" welch " in r for r in rows), rows  # other settings: not paired


def test_bad_threshold_values_are_one_line_errors(reference: Path) -> None:
    for value in ("-1", "inf", "x"):
        out = harness("compare", str(reference), str(reference), "--max-slowdown", value,
                      cwd=reference.parent)  # fmt: skip
        assert out.returncode == 2 and out.stderr.startswith("harness: error: argument")
        assert out.stderr.count("\n") == 1


def _cell(seed: int, acc: float, lr: float = 0.1) -> dict[str, Any]:
    spec = {"model": {"norm": "none"}, "train": {"seed": seed, "lr": lr}, "data": {"name": "d"}}
    return {"status": "ok", "spec": spec, "result": {"epochs": [{"val_acc": acc}]}}


def test_the_verdict_comes_from_the_interval_of_the_difference() -> None:
    """Overlapping intervals of each run can still resolve a paired difference."""
    a = [_cell(s, acc) for s, acc in enumerate((0.80, 0.90, 0.85))]
    b = [_cell(s, acc + 0.01) for s, acc in enumerate((0.80, 0.90, 0.85))]
    paired = acc_difference(a, b)
    assert paired.method == "paired-t" and verdict(paired) == "higher in B"
    b_other = [_cell(s, acc + 0.01, lr=0.2) for s, acc in enumerate((0.80, 0.90, 0.85))]
    welch = acc_difference(a, b_other)
    assert welch.method == "welch" and verdict(welch) == "within noise"
    one = acc_difference(a[:1], b[:1])
    assert verdict(one) == "unresolved (1 seed)"


def test_a_changed_claim_verdict_fails_only_when_asked() -> None:
    va = {("bn_faster", "torch/cpu"): "supported", ("bn_regularizes", "torch/cpu"): "unresolved"}
    vb = {("bn_faster", "torch/cpu"): "contradicted", ("bn_regularizes", "torch/cpu"): "unresolved"}
    assert failures([], va, vb, Thresholds()) == []
    (line,) = failures([], va, vb, Thresholds(verdict_change=True))
    assert line.startswith("claim bn_faster on torch/cpu: supported in A, contradicted in B")
    only_b = Match(("fake", "cpu", "bn", ""), None, {"ok": 1})
    assert failures([only_b], {}, {}, Thresholds(0.0, 0.0, True)) == []
