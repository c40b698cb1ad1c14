"""The timing suite: FLOP counts, statistics, baselines, the cell task and its report.

No wall-clock assertion anywhere: times are only checked to be finite and positive.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fake_plugin import FakeBackend
from test_run import harness, results

from harness import baselines
from harness.report.stats import paired_ratios, spread
from harness.roofline import (
    eval_flops,
    fraction_of_roofline,
    measure_rates,
    roofline_seconds,
    total_flops,
    train_shapes,
    train_step_flops,
)
from harness.specs import DataSpec, ModelSpec, replace
from harness.suite import RunOptions, expand
from harness.suites.timing import TIMING
from harness.tasks.timing import time_cell

ROOT = Path(__file__).resolve().parents[1]
FAKE_EXPERT = """
import numpy as np, time
def prepare(x, y, batch_size, bn, seed=0, device="cpu"):
    def epoch():
        start = time.perf_counter()
        float(np.square(x[:batch_size]).sum())
        return time.perf_counter() - start
    return epoch
"""
BROKEN = "def prepare(*args, **kwargs):\n    raise RuntimeError('no such framework here')\n"


def test_train_step_flops_of_the_timing_mlp() -> None:
    spec = ModelSpec(input_size=784, hidden_sizes=(512, 256), num_classes=10)
    # 6 b sum(in*out) - 2 b in0*out0: no input gradient for the first layer
    per_sample = 6 * (784 * 512 + 512 * 256 + 256 * 10) - 2 * 784 * 512
    assert per_sample == 2_407_424
    assert train_step_flops(spec, 128) == 128 * per_sample
    assert eval_flops(spec, 1000) == 1000 * 2 * (784 * 512 + 512 * 256 + 256 * 10)


def test_train_shapes_are_forward_weight_and_input_gradients() -> None:
    spec = ModelSpec(input_size=4, hidden_sizes=(3,), num_classes=2)
    assert train_shapes(spec, 8) == [(8, 4, 3), (4, 8, 3), (8, 3, 2), (3, 8, 2), (8, 2, 3)]
    assert total_flops([(2, 3, 4)]) == 48


def test_roofline_seconds_and_fraction() -> None:
    assert roofline_seconds(2e9, 1e9) == 2.0
    assert fraction_of_roofline(4.0, 2e9, 1e9) == 0.5
    assert math.isnan(roofline_seconds(1e9, None))
    assert math.isnan(fraction_of_roofline(0.0, 1e9, 1e9))


def test_measure_rates_returns_one_rate_per_repeat() -> None:
    calls: list[int] = []
    rates = measure_rates(calls.append, 1e6, repeats=4, min_seconds=0.0)
    assert len(rates) == 4 and all(r > 0 and math.isfinite(r) for r in rates)
    assert calls[0] == 1  # the warm-up pass


def test_spread_quartiles_and_paired_ratios() -> None:
    s = spread([5, 1, 3, 2, 4, float("nan"), None])
    assert (s.n, s.median, s.q1, s.q3, s.lo, s.hi) == (5, 3.0, 2.0, 4.0, 1.0, 5.0)
    assert s.iqr == 2.0 and s.text(".1f") == "3.0 [2.0–4.0]"
    assert spread([]).text() == "-" and spread([7.0]).text(".1f") == "7.0"
    assert paired_ratios([2.0, 3.0, 1.0], [1.0, 0.0, 2.0]) == [2.0, 0.5]


def test_timing_suite_expands_per_backend_and_batch_size() -> None:
    cells = expand(TIMING, RunOptions(backends=("torch", "jax")), "r")
    assert [(c.backend, c.train.batch_size) for c in cells] == [
        (b, bs) for bs in (32, 128, 512) for b in ("torch", "jax")
    ]
    assert all(c.task == "harness.tasks.timing:time_cell" and c.model.norm == "none" for c in cells)
    quick = expand(TIMING, RunOptions(backends=("jax",), quick=True), "r")
    assert [c.train.batch_size for c in quick] == [128, 512]
    assert {c.train.epochs for c in quick} == {3}


@pytest.mark.parametrize("name", ["torch", "keras", "jax"])
@pytest.mark.parametrize("kind", ["expert", "tutorial"])
def test_checkout_has_every_baseline_with_its_interface(name: str, kind: str) -> None:
    # Found where the package has it (installed, editable or a checkout), the checkout's script.
    path = baselines.find(name, kind)
    assert path is not None and path.parent == baselines.package_dir()
    assert path.read_bytes() == (ROOT / "baselines" / path.name).read_bytes()
    tree = ast.parse(path.read_text())
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert [a.arg for a in functions["prepare"].args.args] == [
        "x",
        "y",
        "batch_size",
        "bn",
        "seed",
        "device",
    ]
    assert [a.arg for a in functions["run"].args.args][:5] == [
        "x",
        "y",
        "batch_size",
        "epochs",
        "bn",
    ]
    assert ast.get_docstring(tree)


@pytest.fixture
def fake_baselines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``fake_expert.py`` (a NumPy stand-in) and a broken ``fake_tutorial.py``."""
    folder = tmp_path / "baselines"
    folder.mkdir()
    (folder / "fake_expert.py").write_text(FAKE_EXPERT)
    (folder / "fake_tutorial.py").write_text(BROKEN)
    monkeypatch.setenv(baselines.ENV_VAR, str(folder))
    return folder


class RatedFake(FakeBackend):
    """The fake backend with a NumPy GEMM rate, for the roofline."""

    def matmul_rates(self, shapes: list[Any], repeats: int = 5) -> list[float]:
        pairs = [(np.ones((m, k)), np.ones((k, n))) for m, k, n in shapes]
        run = lambda calls: [a @ b for _ in range(calls) for a, b in pairs]  # noqa: E731
        return measure_rates(run, total_flops(shapes), repeats, min_seconds=0.0)


def small_cell(batch_size: int = 64) -> Any:
    """A timing cell for the fake backend on synthetic data, with a small MLP."""
    opts = RunOptions(backends=("fake",), data=DataSpec(name="synthetic"), epochs=2, quick=True)
    cell = expand(TIMING, opts, "r")[0]
    return dataclasses.replace(
        cell,
        model=replace(cell.model, hidden_sizes=(16,)),
        train=replace(cell.train, batch_size=batch_size),
    )


# The task runs the garbage collector in this process: finalizers of objects other tests left
# behind (Ray's sockets) would report their errors here, under this test's name.
FOREIGN_GARBAGE = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@FOREIGN_GARBAGE
def test_time_cell_times_harness_and_baselines_bn_off_and_on(fake_baselines: Path) -> None:
    messages: list[dict[str, Any]] = []
    result = time_cell(RatedFake(), small_cell(), messages.append)
    assert result["status"] == "ok"
    assert set(result["loops"]) == {"harness/no-bn", "harness/bn", "expert/no-bn", "expert/bn"}
    for loop in result["loops"].values():
        assert len(loop["times_s"]) == 2 and loop["first_s"] > 0
        assert all(t > 0 for t in loop["times_s"])
    assert result["loops"]["harness/bn"]["samples"] == (1600 // 64) * 64
    assert len(result["loops"]["harness/no-bn"]["eval_s"]) == 4  # first + warm-up + 2 rounds
    assert "RuntimeError: no such framework here" in result["baseline_errors"]["tutorial"]
    assert len(result["gemm"]["rates"]) == 10 and result["gemm"]["step_flops"] > 0
    assert result["peak_rss_mb"] > 0 and "OMP_WAIT_POLICY" in result["thread_env"]
    assert 0 <= result["others_cpu_share"] <= 1
    assert [m["metrics"]["epoch"] for m in messages] == [1, 2]


@FOREIGN_GARBAGE
def test_a_backend_without_gemm_rates_or_baselines_still_times() -> None:
    result = time_cell(FakeBackend(), small_cell(32), lambda message: None)
    assert set(result["loops"]) == {"harness/no-bn", "harness/bn"}
    assert result["gemm"]["rates"] == []


def test_timing_run_report_has_every_section(fake_baselines: Path, tmp_path: Path) -> None:
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps(BENCH_JSON))
    env = {"HARNESS_BENCHMARK_JSON": str(bench), baselines.ENV_VAR: str(fake_baselines)}
    out = harness(
        "run", "--suite", "timing", "--backend", "fake", "--dataset", "synthetic", "--quick",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    data = results(tmp_path)
    assert [c["status"] for c in data["cells"]] == ["ok", "ok"]
    folder = next((tmp_path / "reports" / "runs").glob("timing-*"))
    report = (folder / "report.md").read_text()
    for heading in (
        "## Timing",
        "### Harness against the expert baseline (batch 128 and 512)",
        "### Epoch time of the harness",
        "### Harness against the baselines",
        "### BatchNorm's cost",
        "### Roofline",
        "### pytest-benchmark results",
    ):
        assert heading in report
    assert "harness/expert" in report and (folder / "timing.png").stat().st_size > 0
    if "OMP_WAIT_POLICY" not in os.environ:
        assert "`OMP_WAIT_POLICY` unset (OpenMP's default" in report
    assert re.search(r"Other processes used \d+\.\d% to \d+\.\d% of the machine's CPU", report)
    assert set(data["findings"]["timing"]) == {"epochs", "baselines", "bn_cost", "roofline"}
    assert data["findings"]["benchmarks"][0]["what"] == "train epoch"


BENCH_JSON = {
    "machine_info": {"harness": {"backends": {"fake": {"numpy": "x"}}}},
    "benchmarks": [
        {
            "group": "train epoch",
            "name": "test_train_epoch[fake-bn-128]",
            "params": {"backend_name": "fake", "bn": True, "batch_size": 128},
            "stats": {"median": 0.2, "iqr": 0.01, "rounds": 10},
            "extra_info": {"samples": 3968},
        }
    ],
}


def test_thread_env_is_equal_for_all_and_passes_only_the_callers_wait_policy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from harness.environment import thread_env

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    env = thread_env(3)
    assert env["OMP_NUM_THREADS"] == env["TF_NUM_INTRAOP_THREADS"] == "3"
    assert "OMP_WAIT_POLICY" not in env  # OpenMP's default: PASSIVE halved torch's speed
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert thread_env(3)["OMP_WAIT_POLICY"] == "ACTIVE"
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="needs Linux /proc/stat")
def test_other_load_counts_other_processes_not_this_one() -> None:
    from harness.environment import OtherLoad

    def spin(seconds: float) -> None:
        end = time.process_time() + seconds
        while time.process_time() < end:
            pass

    mine = OtherLoad()
    spin(0.5)
    own = mine.share()  # this process's own work is not "other"
    theirs = OtherLoad()
    child = "import time\nend = time.process_time() + 0.8\nwhile time.process_time() < end: pass"
    subprocess.run([sys.executable, "-c", child], check=True, timeout=60)
    other = theirs.share()  # one busy core of cpu_count: about 1/cores of the machine
    assert own < other and other > 0.5 / (os.cpu_count() or 1), (own, other)
