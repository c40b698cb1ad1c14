"""The bn-numerics cell task: conventions, every BN case, and the trajectory, in one worker.

Runs inside the backend's worker with ``task(backend, cell, emit)``. Every case applies the
backend's own BN layer (:meth:`Backend.batchnorm`) to seeded inputs and compares it with the
float64 reference in this backend's measured running-variance convention; momentum and epsilon are
the requested ones (0.1 and 1e-5 in the core convention) or, for the native-defaults case, the
measured native ones.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from harness.backend import Backend, BNCall, BNResult
from harness.conventions import effective
from harness.numerics.cases import VARIANTS, Case, all_cases, case_tolerances, layer_inputs
from harness.numerics.conventions import (
    CORE_EPSILON,
    CORE_MOMENTUM,
    call_layer,
    probe_conventions,
    probe_variants,
    reference_conventions,
)
from harness.numerics.difftest import run_difftest
from harness.numerics.errors import compare, result_arrays, verdict, worst, worst_ratio
from harness.numerics.lockstep import run_trajectory
from harness.numerics.reference import Convention, reference
from harness.specs import MODEL_CONVENTIONS, CellSpec, replace
from harness.tasks.common import load_data

Emit = Callable[[dict[str, Any]], None]
Arrays = dict[str, np.ndarray]


def bn_call(case: Case, training: bool | None = None) -> BNCall:
    """The layer call of ``case``: asked-for momentum/epsilon, or the framework's (native)."""
    return BNCall(
        training=case.training if training is None else training,
        momentum=None if case.native else CORE_MOMENTUM,
        epsilon=None if case.native else CORE_EPSILON,
        dtype=case.dtype,
        variant=case.variant,
    )


Applied = tuple[BNResult, Arrays, tuple[np.ndarray, Arrays, np.ndarray]]


def _chain(backend: Backend, case: Case, conv: Convention) -> Applied:
    """``case.steps`` training steps, each layer fed its own running statistics, then eval.

    The backend's statistics and the reference's evolve separately, so the final eval-mode
    comparison includes every step's accumulated running-statistics error.
    """
    _, params, _ = layer_inputs(case, 0)
    ours, ref_params = dict(params), dict(params)
    for step in range(case.steps):
        x, _, upstream = layer_inputs(case, step)
        result = call_layer(backend, x, ours, bn_call(case, True), upstream)
        if result.error:
            return result, {}, (x, ref_params, upstream)
        ref = reference(x, ref_params, upstream, True, conv)
        ours = {**ours, "mean": result.running_mean, "var": result.running_var}
        ref_params = {**ref_params, "mean": ref["running_mean"], "var": ref["running_var"]}
    x, _, upstream = layer_inputs(case, case.steps)
    result = call_layer(backend, x, ours, bn_call(case, False), upstream)
    ref = reference(x, ref_params, upstream, False, conv)
    return result, ref, (x, ref_params, upstream)


def _apply(backend: Backend, case: Case, conv: Convention) -> Applied:
    """The backend's result, the reference's, and the inputs of the (last) call."""
    if case.steps > 1:
        return _chain(backend, case, conv)
    x, params, upstream = layer_inputs(case)
    result = call_layer(backend, x, params, bn_call(case), upstream)
    return result, reference(x, params, upstream, case.training, conv), (x, params, upstream)


def _against(errors: dict[str, dict[str, float]], tols: dict[str, float]) -> dict[str, Any]:
    """Each quantity's error with its derived tolerance and ``ratio`` = rel / tol."""
    return {
        q: {**e, "tol": tols[q], "ratio": e["rel"] / tols[q] if tols[q] > 0 else math.nan}
        for q, e in errors.items()
    }


def run_case(backend: Backend, case: Case, conv: Convention) -> dict[str, Any]:
    """One case: errors of every quantity against the reference, and the verdict."""
    result, ref, inputs = _apply(backend, case, conv)
    tols = case_tolerances(case, *inputs, conv.momentum)
    record: dict[str, Any] = {
        "name": case.name,
        "group": case.group,
        "shape": [case.n, case.d],
        "ratio": case.ratio,
        "dtype": case.dtype,
        "mode": "eval" if (not case.training or case.steps > 1) else "train",
        "steps": case.steps,
        "native": case.native,
        "variant": case.variant,
        "well_conditioned": case.well_conditioned,
        "tolerance": tols,
        "error": result.error,
        "errors": {} if result.error else _against(compare(result, ref), tols),
        "reference": {
            "momentum": conv.momentum,
            "epsilon": conv.epsilon,
            "unbiased": conv.unbiased,
        },
    }
    record["max_rel"] = worst(record["errors"]) if not result.error else float("nan")
    record["max_ratio"] = worst_ratio(record["errors"]) if not result.error else float("nan")
    record["verdict"] = verdict(case, record)
    if case.keep_raw and not result.error:
        record["raw"] = {k: v.tolist() for k, v in result_arrays(result).items()}
    return record


def numerics_cell(backend: Backend, cell: CellSpec, emit: Emit) -> dict[str, Any]:
    """The cell: measure conventions, run every case, then the trajectory check."""
    timings: dict[str, float] = {}
    start = time.perf_counter()
    probes = probe_conventions(backend)
    conv, native = reference_conventions(probes)
    timings["conventions_s"] = time.perf_counter() - start
    offered = [v for v in backend.bn_variants() if v in VARIANTS]
    variants = probe_variants(backend, offered)
    todo = [c for c in all_cases() if not c.variant or c.variant in offered]
    cases = [run_case(backend, c, _convention(c, conv, native, variants)) for c in todo]
    timings["cases_s"] = time.perf_counter() - start - timings["conventions_s"]
    started = time.perf_counter()
    try:
        trajectory = run_trajectory(backend, cell, conv.unbiased)
    except Exception as exc:  # the BN measurements above still stand
        trajectory = {"error": f"{type(exc).__name__}: {exc}"}
    timings["trajectory_s"] = time.perf_counter() - started
    started = time.perf_counter()
    try:
        difftest = run_difftest(backend, cell, conv.unbiased)
    except Exception as exc:  # NotImplementedError: a backend without trace_step
        difftest = {"error": f"{type(exc).__name__}: {exc}"}
    timings["difftest_s"] = time.perf_counter() - started
    return {
        "status": "ok",
        "conventions": {**probes, "variants": variants},
        "cases": cases,
        "trajectory": trajectory,
        "difftest": difftest,
        "timings": timings,
        "dataset": _dataset(cell),
        "variance_formula": _formulas(backend, cell),
    }


def _convention(
    case: Case, conv: Convention, native: Convention, variants: dict[str, Any]
) -> Convention:
    """The reference's convention for ``case``: native or core, and for a layer variant its
    own measured running-variance rule (so its errors are arithmetic, the rule is reported)."""
    if not case.variant:
        return native if case.native else conv
    fed = variants.get(case.variant, {}).get("variance", {}).get("fed")
    return Convention(conv.momentum, conv.epsilon, unbiased=fed == "unbiased")


def _formulas(backend: Backend, cell: CellSpec) -> dict[str, Any]:
    """The batch-variance formula of the mapped and of the native-defaults layer, as the
    backend reports it (:meth:`Backend.conventions`)."""
    native = replace(cell.model, native=MODEL_CONVENTIONS)
    return {
        mode: effective(backend, spec, cell.train).get("bn_variance", "not reported")
        for mode, spec in (("mapped", cell.model), ("native", native))
    }


def _dataset(cell: CellSpec) -> dict[str, Any]:
    return load_data(cell.data).info()
