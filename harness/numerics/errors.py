"""Error measures between a backend's BN result and the float64 reference, and case verdicts.

The relative measure is max-norm relative: ``max|a - r| / max|r|`` over the whole array. Unlike
an elementwise relative error it does not blow up on entries that happen to be near zero, and it
is the measure the tolerances of :mod:`harness.numerics.cases` are stated in; a verdict
compares each quantity with its own derived tolerance.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from harness.backend import BNResult
from harness.numerics.cases import Case
from harness.numerics.reference import QUANTITIES

Arrays = dict[str, np.ndarray]
TINY = 1e-30


def max_abs(actual: np.ndarray, ref: np.ndarray) -> float:
    """Largest absolute difference (NaN when ``actual`` has a NaN or the shapes differ)."""
    a, r = np.asarray(actual, np.float64), np.asarray(ref, np.float64)
    if a.shape != r.shape or a.size == 0:
        return math.nan
    return float(np.max(np.abs(a - r)))


def max_rel(actual: np.ndarray, ref: np.ndarray) -> float:
    """Max-norm relative difference ``max|a - r| / max|r|``."""
    scale = float(np.max(np.abs(np.asarray(ref, np.float64)), initial=0.0))
    return max_abs(actual, ref) / max(scale, TINY)


def result_arrays(result: BNResult) -> Arrays:
    """The arrays of a :class:`BNResult` by quantity name (missing gradients left out)."""
    values = {q: getattr(result, q) for q in QUANTITIES}
    return {q: np.asarray(v, np.float32) for q, v in values.items() if v is not None}


def compare(result: BNResult, ref: Arrays) -> dict[str, dict[str, float]]:
    """Max absolute and max-norm relative error of every quantity the backend returned."""
    out = {}
    for name, value in result_arrays(result).items():
        out[name] = {"abs": max_abs(value, ref[name]), "rel": max_rel(value, ref[name])}
    return out


def worst(errors: dict[str, dict[str, float]]) -> float:
    """The largest relative error over quantities (NaN wins: a NaN is never a pass)."""
    values = [e["rel"] for e in errors.values()]
    if not values or any(math.isnan(v) for v in values):
        return math.nan
    return max(values)


def worst_ratio(errors: dict[str, dict[str, float]]) -> float:
    """The largest error / derived tolerance over quantities (NaN wins, as in :func:`worst`)."""
    return worst({q: {"rel": e["ratio"]} for q, e in errors.items()})


def verdict(case: Case, record: dict[str, Any]) -> str:
    """``pass``/``fail`` for a well-conditioned case; ``finding`` for an ill-conditioned one.

    A backend that refuses a half-precision dtype is ``unsupported``; one that refuses an
    ill-conditioned case (batch size 1) has it recorded as a finding.
    """
    if record.get("error"):
        if case.dtype != "float32":
            return "unsupported"
        return "fail" if case.well_conditioned else "finding"
    if not case.well_conditioned:
        return "finding"
    value = record["max_ratio"]  # each quantity against its own derived tolerance
    return "pass" if math.isfinite(value) and value <= 1 else "fail"
