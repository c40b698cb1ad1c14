"""bn-numerics: convention inference, cases, task and report, on reference and real backends.

The inference functions are checked on synthetic results built from the float64 reference with
known conventions; the whole task runs in-process on NumPy "backends" whose BN layer is the
reference in a chosen convention (torch-like, Keras-like, and one with a momentum bug), then on
PyTorch, then end to end through the ``harness`` command.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import backend_instance
from fake_plugin import FakeBackend

from harness.backend import BNCall, BNResult
from harness.numerics import conventions as cv
from harness.numerics.cases import (
    Case,
    all_cases,
    case_tolerances,
    layer_inputs,
    quantize,
    tolerance,
)
from harness.numerics.drift import relu_flips
from harness.numerics.errors import verdict
from harness.numerics.lockstep import run_trajectory
from harness.numerics.reference import Convention, reference
from harness.report import build_report
from harness.specs import CellSpec, DataSpec, replace
from harness.suite import RunOptions, expand
from harness.suites.bn_numerics import BN_NUMERICS
from harness.tasks.numerics import numerics_cell, run_case
from harness.worker import _clean


class ReferenceBN(FakeBackend):
    """The fake backend with the float64 reference as its BN layer, in a chosen convention."""

    def __init__(self, conv: Convention, refuse_single: bool = False, inverted: bool = False):
        super().__init__("cpu", 1)
        self.conv, self.refuse_single, self.inverted = conv, refuse_single, inverted

    def build(self, spec: Any, params: Any, seed: int = 0) -> Any:
        model = super().build(spec, params, seed)
        model.unbiased_running_var = self.conv.unbiased
        return model

    def batchnorm(self, x: np.ndarray, params: Any, call: BNCall, upstream: np.ndarray) -> BNResult:
        if self.refuse_single and call.training and len(x) == 1:
            raise ValueError("Expected more than 1 value per channel when training")
        momentum = self.conv.momentum if call.momentum is None else call.momentum
        momentum = 1 - momentum if self.inverted and call.momentum is not None else momentum
        eps = self.conv.epsilon if call.epsilon is None else call.epsilon
        conv = Convention(momentum, eps, self.conv.unbiased)
        ref = reference(x, params, upstream, call.training, conv)
        return BNResult(**{k: quantize(v, call.dtype) for k, v in ref.items()})


class WrongEpsilon(ReferenceBN):
    """A layer that uses epsilon 1e-3 (Keras's default) whatever it is asked for."""

    def batchnorm(self, x: np.ndarray, params: Any, call: BNCall, upstream: np.ndarray) -> BNResult:
        return super().batchnorm(x, params, dataclasses.replace(call, epsilon=1e-3), upstream)


TORCH_LIKE = Convention(0.1, 1e-5, unbiased=True)
KERAS_LIKE = Convention(0.01, 1e-3, unbiased=False)


def probe_inputs(n: int = 16, d: int = 8) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    x, params, g = layer_inputs(Case("t", "t", n, d))
    return x, {**params, "mean": np.zeros(d), "var": np.ones(d)}, g


def as_result(ref: dict[str, np.ndarray]) -> BNResult:
    return BNResult(**{k: v.astype(np.float32) for k, v in ref.items()})


@pytest.mark.parametrize("momentum", [0.1, 0.01, 0.9])
@pytest.mark.parametrize("unbiased", [False, True])
def test_momentum_and_variance_are_inferred(momentum: float, unbiased: bool) -> None:
    x, params, g = probe_inputs()
    result = as_result(reference(x, params, g, True, Convention(momentum, 1e-5, unbiased)))
    weight = cv.momentum_weight(x, params["mean"], result.running_mean)
    assert weight == pytest.approx(momentum, rel=1e-5)
    fed = cv.variance_fed(x, params["var"], weight, result.running_var)
    assert fed["fed"] == ("unbiased" if unbiased else "biased")
    assert fed["ratio_to_biased"] == pytest.approx(16 / 15 if unbiased else 1.0, rel=1e-4)


def test_momentum_labels_name_the_styles() -> None:
    assert "torch style" in cv.momentum_label(0.1000001)
    assert "momentum=0.99" in cv.momentum_label(0.0099999)
    assert "Keras 0.7" in cv.momentum_label(0.3)


@pytest.mark.parametrize("eps", [1e-3, 1e-5])
def test_epsilon_inversion_recovers_epsilon(eps: float) -> None:
    rng = np.random.default_rng(3)
    d = 8
    unit = {"scale": np.ones(d), "offset": np.zeros(d), "mean": np.zeros(d), "var": np.zeros(d)}
    away = rng.uniform(0.5, 2.0, (16, d)) * rng.choice([-1, 1], (16, d))
    out = reference(away, unit, away, False, Convention(epsilon=eps))["out"].astype(np.float32)
    assert cv.epsilon_from_eval(away, out) == pytest.approx(eps, rel=1e-5)
    small = (1e-3 * rng.standard_normal((16, d))).astype(np.float32)
    out = reference(small, {**unit, "var": np.ones(d)}, small, True, Convention(epsilon=eps))
    assert cv.epsilon_from_train(small, out["out"].astype(np.float32)) == pytest.approx(eps, 1e-4)


def test_batch_one_behaviours_are_told_apart() -> None:
    x, params, g = probe_inputs(n=1)
    silent = as_result(reference(x, params, g, True, Convention()))
    found = cv.batch_one(x, params, 0.1, silent)
    assert found["kind"] == "silent" and "output = offset" in found["label"]
    assert found["running_var_factor"] == pytest.approx(0.9) and found[
        "variance_fed"
    ] == pytest.approx(0, abs=1e-6)
    empty = np.zeros(0, np.float32)
    refused = BNResult(empty, None, None, None, empty, empty, "ValueError: need 2 values")
    assert cv.batch_one(x, params, 0.1, refused)["kind"] == "error"
    nan = dataclasses.replace(silent, out=np.full_like(silent.out, np.nan))
    assert cv.batch_one(x, params, 0.1, nan)["kind"] == "nan"


@pytest.mark.parametrize("conv, refuse", [(TORCH_LIKE, True), (KERAS_LIKE, False)])
def test_probes_measure_the_layer_conventions(conv: Convention, refuse: bool) -> None:
    probes = cv.probe_conventions(ReferenceBN(conv, refuse_single=refuse))
    assert probes["core"]["weight"] == pytest.approx(0.1, rel=1e-5)
    assert probes["native"]["weight"] == pytest.approx(conv.momentum, rel=1e-5)
    assert probes["core"]["variance"]["fed"] == ("unbiased" if conv.unbiased else "biased")
    for key in ("native_eval", "native_train"):
        assert probes["epsilon"][key] == pytest.approx(conv.epsilon, rel=1e-4)
    assert probes["epsilon"]["core_eval"] == pytest.approx(1e-5, rel=1e-4)
    assert probes["batch1"]["kind"] == ("error" if refuse else "silent")
    core, native = cv.reference_conventions(probes)
    assert core == Convention(0.1, 1e-5, conv.unbiased)
    assert native.epsilon == pytest.approx(conv.epsilon, rel=1e-4)


@pytest.mark.parametrize("conv", [TORCH_LIKE, KERAS_LIKE])
def test_every_well_conditioned_case_passes_on_the_reference(conv: Convention) -> None:
    backend = ReferenceBN(conv, refuse_single=conv.unbiased)
    core, native = cv.reference_conventions(cv.probe_conventions(backend))
    records = [run_case(backend, c, native if c.native else core) for c in all_cases()]
    for case, record in zip(all_cases(), records):
        assert record["verdict"] in (("pass",) if case.well_conditioned else ("finding",))
        if case.well_conditioned and case.dtype == "float32":
            assert record["max_rel"] < 1e-6, record
    single = next(r for r in records if r["name"] == "batch 1")
    assert bool(single["error"]) == conv.unbiased


def test_a_mistranslated_momentum_is_measured_and_fails() -> None:
    backend = ReferenceBN(TORCH_LIKE, inverted=True)
    probes = cv.probe_conventions(backend)
    assert probes["core"]["weight"] == pytest.approx(0.9, rel=1e-5)
    core, _ = cv.reference_conventions(probes)
    record = run_case(backend, all_cases()[0], core)
    assert record["verdict"] == "fail" and record["errors"]["running_mean"]["rel"] > 0.1


def test_verdicts() -> None:
    good, tiny = Case("a", "shape", 64, 8), Case("b", "batch", 1, 8)
    half = Case("c", "dtype", 64, 8, dtype="bfloat16")
    assert verdict(good, {"error": "", "max_ratio": 0.9}) == "pass"
    assert verdict(good, {"error": "", "max_ratio": 1.1}) == "fail"
    assert verdict(good, {"error": "", "max_ratio": float("nan")}) == "fail"
    assert verdict(tiny, {"error": "ValueError", "max_ratio": float("nan")}) == "finding"
    assert verdict(half, {"error": "unsupported dtype", "max_ratio": float("nan")}) == "unsupported"
    assert verdict(half, {"error": "", "max_ratio": 0.02 / tolerance("bfloat16")}) == "pass"


@pytest.mark.parametrize("n", [16, 64, 256])
def test_derived_tolerance_follows_the_sum_length(n: int) -> None:
    """grad_offset is a batch sum: its tolerance grows with n (C u n κ), so a 256-sample sum
    gets about 16 times the room of a 16-sample one, not one global number."""
    case = Case(f"b{n}", "batch", n, 32)
    x, params, g = layer_inputs(case)
    tols = case_tolerances(case, x, params, g, 0.1)
    kappa = max(1.0, np.abs(g).sum(0).max() / np.abs(g.sum(0)).max())
    assert tols["grad_offset"] == pytest.approx(2.0**-24 * n * kappa)
    assert tols["out"] == pytest.approx(2.0**-24 * 2 * n * max(1, _ratio(x)))


def _ratio(x: np.ndarray) -> float:
    return float(np.max(np.abs(x.mean(0)) / x.std(0)))


def test_derived_tolerance_grows_with_the_conditioning() -> None:
    tols = []
    for r in (1.0, 100.0):
        case = Case("r", "ratio", 64, 32, ratio=r)
        tols.append(case_tolerances(case, *layer_inputs(case), 0.1))
    assert tols[1]["out"] > 50 * tols[0]["out"]
    assert tols[1]["grad_offset"] == pytest.approx(tols[0]["grad_offset"], rel=0.5)  # no centring


@pytest.mark.parametrize("case", [c for c in all_cases() if c.well_conditioned][:6], ids=str)
def test_a_wrong_epsilon_exceeds_the_derived_tolerance(case: Case) -> None:
    """A layer that ignores the asked epsilon (1e-5) and uses 1e-3 fails every well-conditioned
    float32 case (by 5x or more at |mean|/std 10, where the tolerance is loosest)."""
    backend = WrongEpsilon(Convention(0.1, 1e-5))
    record = run_case(backend, case, Convention(0.1, 1e-5))
    assert record["verdict"] == "fail" and record["max_ratio"] > 5, record["max_ratio"]
    honest = run_case(ReferenceBN(Convention(0.1, 1e-5)), case, Convention(0.1, 1e-5))
    assert honest["verdict"] == "pass" and honest["max_ratio"] < 0.1


def numerics_cell_spec(tmp_path: Path, backend: str, steps: int, dataset: str) -> CellSpec:
    opts = RunOptions(backends=(backend,), data=DataSpec(name=dataset), artifacts=str(tmp_path))
    (cell,) = expand(BN_NUMERICS, opts, "test-run")
    return dataclasses.replace(cell, train=replace(cell.train, epochs=steps))


def stored(cell: CellSpec, result: dict[str, Any]) -> dict[str, Any]:
    """A cell as the store returns it (worker JSON round trip included)."""
    result = json.loads(json.dumps(_clean(result)))
    return {
        "cell_id": cell.cell_id,
        "backend": cell.backend,
        "device": cell.device,
        "variant": cell.variant,
        "status": result.pop("status"),
        "spec": cell.to_dict(),
        "result": result,
        "reason": "",
        "stderr_tail": "",
    }


def test_task_and_report_on_two_reference_backends(tmp_path: Path) -> None:
    cells = []
    for name, conv in (("torchlike", TORCH_LIKE), ("keraslike", KERAS_LIKE)):
        spec = numerics_cell_spec(tmp_path / "artifacts", name, 3, "synthetic")
        cells.append(stored(spec, numerics_cell(ReferenceBN(conv), spec, lambda m: None)))
    run = {
        "run_id": "test-run",
        "suite": "bn-numerics",
        "status": "finished",
        "settings": {"backends": ["torchlike", "keraslike"], "devices": ["cpu"]},
        "env": {},
    }
    report = build_report(run, cells, BN_NUMERICS, tmp_path / "report").read_text()
    assert "## Conventions, measured" in report and "| backend " in report
    findings = json.loads((tmp_path / "report" / "results.json").read_text())["findings"]
    assert findings["conventions"]["torchlike/cpu"]["core"]["variance"]["fed"] == "unbiased"
    assert findings["conventions"]["keraslike/cpu"]["epsilon"]["native_eval"] == pytest.approx(
        1e-3, rel=1e-4
    )
    divergence = findings["trajectory"]["divergence"]
    assert divergence["first_params_over"] is None  # same arithmetic: parameters agree
    # ... and so do the running statistics once the variance convention is corrected for
    assert divergence["first_stats_over"] is None
    effect = findings["eval_effect"]
    assert [r["step"] for r in effect] == [1, 2, 3]
    assert all(r["logits"] > 1e3 * max(r["given_var"], 1e-15) for r in effect)
    assert (tmp_path / "report" / "divergence.png").stat().st_size > 10_000
    assert any("unbiased" in line for line in findings["summary"])


def test_a_backend_without_a_bn_layer_is_reported_not_crashed(tmp_path: Path) -> None:
    spec = numerics_cell_spec(tmp_path / "artifacts", "fake", 2, "synthetic")
    cell = stored(spec, numerics_cell(FakeBackend("cpu", 1), spec, lambda m: None))
    assert cell["status"] == "ok" and "error" in cell["result"]["conventions"]["core"]
    run = {"run_id": "r", "suite": "bn-numerics", "status": "finished", "settings": {}, "env": {}}
    report = build_report(run, [cell], BN_NUMERICS, tmp_path / "report").read_text()
    tested = sum(c.well_conditioned and c.dtype == "float32" for c in all_cases())  # no fp16 here
    # layer variants (renorm) run only where the backend offers them; the fake offers none
    findings = sum(not c.well_conditioned and not c.variant for c in all_cases())
    assert "Conventions not measured" in report
    assert re.search(rf"\| fake/cpu +\| 0 +\| {tested} +\| {findings} ", report)


def test_torch_task_in_process(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    backend = backend_instance("torch")
    spec = numerics_cell_spec(tmp_path, "torch", 2, "mnist-5k")
    result = numerics_cell(backend, spec, lambda m: None)
    probes = result["conventions"]
    assert probes["core"]["variance"]["fed"] == "unbiased"
    assert probes["native"]["weight"] == pytest.approx(0.1, rel=1e-4)
    assert probes["epsilon"]["native_eval"] == pytest.approx(1e-5, rel=1e-3)
    assert probes["batch1"]["kind"] == "error" and "more than 1 value" in probes["batch1"]["label"]
    for case in result["cases"]:
        if case["well_conditioned"]:
            assert case["verdict"] == "pass", case
    trajectory = result["trajectory"]
    assert Path(trajectory["npz"]).exists() and len(trajectory["losses"]) == 2
    for group, errors in trajectory["ref_rel_error"].items():  # within the derived tolerance
        assert all(e <= t for e, t in zip(errors, trajectory["tolerance"][group])), group
    assert trajectory["first_over"] is None


@pytest.mark.slow
def test_bn_numerics_end_to_end_on_torch(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    command = [sys.executable, "-m", "harness.cli", "run", "--suite", "bn-numerics"]
    out = subprocess.run(
        [*command, "--backend", "torch", "--quick"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
    )
    assert out.returncode == 0, out.stderr
    (path,) = (tmp_path / "reports" / "runs").glob("*/results.json")
    data = json.loads(path.read_text())
    (cell,) = data["cells"]
    assert cell["status"] == "ok" and cell["settings"]["train"]["epochs"] == 5
    assert data["findings"]["conventions"]["torch/cpu"]["core"]["variance"]["fed"] == "unbiased"
    assert data["findings"]["verdicts"]["torch/cpu"]["fail"] == 0
    folder = next((tmp_path / "reports" / "runs").glob("bn-numerics-*"))
    report = (folder / "report.md").read_text()
    assert "## Conventions, measured" in report and "new-stat weight, asked 0.1" in report
    assert (folder / "error_vs_ratio.png").exists() and (folder / "divergence.png").exists()
    assert Path(cell["result"]["trajectory"]["npz"]).exists()


def test_relu_flips_are_told_apart_from_real_differences() -> None:
    """A gate flipped within float32's error of zero is a ReLU-boundary cause; one flipped far
    from zero is not."""
    spec = BN_NUMERICS.model
    z64 = [np.full((4, 3), 1.0), np.full((4, 2), -1.0)]
    z64[1][0, 0] = 1e-9  # within rounding of zero
    near = {"norm_0/out": z64[0], "norm_1/out": np.where(z64[1] == 1e-9, -1e-9, z64[1])}
    found = relu_flips(spec, 4, near, z64)
    assert (found["flipped"], found["near_zero"], found["relu_cause"]) == (1, 1, True)
    far = {"norm_0/out": -z64[0], "norm_1/out": z64[1]}
    found = relu_flips(spec, 4, far, z64)
    assert found["flipped"] == 12 and found["near_zero"] == 0 and not found["relu_cause"]


class DriftingFake(FakeBackend):
    """The float64 fake with its parameters rounded to float32 after every step, or with a
    learning rate 0.1% off (a real error)."""

    def __init__(self, mutation: str) -> None:
        super().__init__("cpu", 1)
        self.mutation = mutation

    def train(self, model: Any, data: Any, spec: Any, order: Any, on_epoch: Any = None) -> Any:
        if self.mutation == "lr":
            spec = replace(spec, lr=spec.lr * 1.001)

        def rounded(metrics: Any) -> bool:
            if self.mutation == "float32":
                model.params = {
                    k: v.astype(np.float32).astype(np.float64) for k, v in model.params.items()
                }
            return on_epoch(metrics)

        return super().train(model, data, spec, order, rounded)


@pytest.mark.parametrize("mutation, over", [("float32", False), ("lr", True)])
def test_trajectory_tolerance_passes_rounding_and_catches_a_wrong_lr(
    tmp_path: Path, mutation: str, over: bool
) -> None:
    # 8 steps: at step 10 of this synthetic run float64 has a ReLU input of 1e-7, which the
    # float32-rounded run flips (a real divergence, which is what the check is for)
    spec = numerics_cell_spec(tmp_path, "fake", 8, "synthetic")
    result = run_trajectory(DriftingFake(mutation), spec, unbiased=False)
    assert (result["first_over"] is not None) == over, result["first_over"]
    if over:  # caught within the first steps, and the snapshots around it are stored
        assert result["first_over"]["step"] <= 3
        assert {1, 2, 3} <= set(result["stored_steps"])
