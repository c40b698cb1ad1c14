"""The BN cases every backend runs, their seeded inputs, and the pass/fail tolerances.

Inputs are drawn with seeded NumPy and rounded to the case's dtype *before* they reach either the
backend or the reference, so both see exactly the same numbers and input rounding never counts as
error. ``ratio`` is |mean|/std of every feature of ``x``: 1 is well-conditioned, 1e4 makes the
batch mean cancel catastrophically in float32.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from harness.numerics.difftest import C
from harness.numerics.difftest import tolerance as derived

Arrays = dict[str, np.ndarray]

UNIT_ROUNDOFF = {"float32": 2.0**-24, "float16": 2.0**-11, "bfloat16": 2.0**-8}
HALF_ULPS = 8
TOLERANCE_REASON = (
    "float32: per quantity, the differential test's formula "
    f"tol = C · u · n_eff · κ (C = {C:g}, u = 2^-24 = 6.0e-8) with n_eff the reductions over "
    "the batch the quantity went through (training: out 2n (mean, then the centred variance), "
    "grad_x 4n (those, Σg and Σg·x̂), grad_scale 3n, grad_offset n, running mean n + 2, "
    "running variance 2n + 2 (the momentum update's two roundings); eval mode: a handful of "
    "elementwise roundings, plus, after k training steps, k times the running statistics' "
    "own), and κ = |mean|/std of the input (what centring loses, for out, grad_x, "
    "grad_scale and the running variance) times "
    "the condition number max Σ|t| / max |Σ t| of the quantity's last sum (grad_scale, "
    "grad_offset, the running mean, and grad_x's n·g − Σg − x̂·Σgx̂). "
    f"float16 and bfloat16: {HALF_ULPS} unit roundoffs of the type (u = 2^-11 and 2^-8): "
    "each stored result is rounded once to the half type (<= 1 u of the max-norm), and the few "
    "half-precision operations of the normalization and of the gradients add a handful more "
    "when the batch reductions are accumulated in float32; reductions accumulated in the half "
    "type itself, whose error grows with the batch size, would exceed it."
)
WELL_CONDITIONED = "batch >= 16 and |mean|/std <= 10"


def tolerance(dtype: str) -> float:
    """Max-norm relative tolerance of a half-precision case (float32 ones are derived per
    quantity: :func:`case_tolerances`); NaN for float32, which has no single number."""
    return HALF_ULPS * UNIT_ROUNDOFF[dtype] if dtype in HALF_ULPS_TYPES else float("nan")


HALF_ULPS_TYPES = ("float16", "bfloat16")


@dataclass(frozen=True)
class Case:
    """One BN experiment: ``n`` x ``d`` inputs, mode, dtype, and how many training steps.

    ``native`` calls the layer with the framework's own momentum and epsilon; ``keep_raw`` stores
    the backend's raw outputs so the report can compare backends with each other directly.
    """

    name: str
    group: str
    n: int
    d: int
    ratio: float = 1.0
    dtype: str = "float32"
    training: bool = True
    steps: int = 1
    native: bool = False
    keep_raw: bool = False
    variant: str = ""

    @property
    def well_conditioned(self) -> bool:
        """True when the case is held to a tolerance (else its errors are findings); a layer
        variant (batch renormalization) computes something else by design: a finding."""
        return self.n >= 16 and self.ratio <= 10 and not self.variant

    @property
    def seed(self) -> int:
        """A stable seed from the case name (Python's ``hash`` is salted per process)."""
        return zlib.crc32(self.name.encode())


GROUPS = {
    "shape": "Well-conditioned inputs (|mean|/std = 1) at several shapes, float32, training",
    "ratio": "Mean/std sweep, 64 x 32, float32, training",
    "native": "Native defaults (each framework's own momentum, epsilon and variance formula), "
    "mean/std sweep, 64 x 32, float32, training",
    "batch": "Batch-size sweep, 32 features, float32, training",
    "mode": "Eval mode, running statistics after several training steps",
    "variant": "Layer variants a backend offers (batch renormalization, TensorFlow's fused op), "
    "64 x 32, float32, against float64 in the variant's measured running-variance convention",
    "dtype": "Half precision, 64 x 256, training",
}
RATIOS = (1.0, 3.0, 10.0, 30.0, 100.0, 1e3, 1e4)
"""The |mean|/std sweep, mapped and at native defaults."""
VARIANTS = ("renorm", "fused")
"""Layer variants run where the backend offers them (:meth:`Backend.bn_variants`): batch
renormalization, and TensorFlow's fused op (which feeds the unbiased variance)."""


def all_cases() -> list[Case]:
    """Every case of the audit, in report order."""
    cases = [
        Case(f"shape {n}x{d}", "shape", n, d, keep_raw=(n, d) == (16, 32))
        for n, d in ((64, 256), (16, 32), (256, 16))
    ]
    cases += [Case(f"ratio {r:g}", "ratio", 64, 32, ratio=r, keep_raw=r == 1e4) for r in RATIOS]
    cases += [Case("native defaults", "native", 16, 32, native=True, keep_raw=True)]
    cases += [Case(f"native, ratio {r:g}", "native", 64, 32, ratio=r, native=True) for r in RATIOS]
    cases += [Case(f"batch {n}", "batch", n, 32, keep_raw=n == 4) for n in (1, 2, 4, 16, 256)]
    cases += [
        Case("eval 64x32", "mode", 64, 32, training=False),
        Case("5 steps then eval", "mode", 64, 32, steps=5),
        Case("eval, mean/std 1e4", "mode", 64, 32, ratio=1e4, training=False),
        Case("5 steps then eval, mean/std 1e4", "mode", 64, 32, ratio=1e4, steps=5),
        Case("native, 5 steps then eval", "mode", 64, 32, steps=5, native=True),
    ]
    cases += [
        Case(f"{v} {label}", "variant", 64, 32, ratio=r, variant=v, steps=s)
        for v in VARIANTS
        for label, r, s in (
            ("ratio 1", 1.0, 1),
            ("ratio 1e4", 1e4, 1),
            ("5 steps then eval", 1.0, 5),
        )
    ]
    cases += [Case(f"{t} 64x256", "dtype", 64, 256, dtype=t) for t in ("float16", "bfloat16")]
    return cases


def quantize(values: np.ndarray, dtype: str) -> np.ndarray:
    """Round to the nearest ``dtype`` value (ties to even) and return it as float32."""
    x = np.asarray(values, np.float32)
    if dtype == "float16":
        return x.astype(np.float16).astype(np.float32)
    if dtype == "bfloat16":
        bits = x.view(np.uint32).astype(np.uint64)
        rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
        return rounded.astype(np.uint32).view(np.float32)
    return x


def layer_inputs(case: Case, step: int = 0) -> tuple[np.ndarray, Arrays, np.ndarray]:
    """Seeded ``(x, params, upstream)`` for ``step`` of ``case``, exact in its dtype.

    Features have their own std (0.5..2) and mean (+-ratio*std), fixed per case; each step draws
    a new batch. The running statistics start near the true ones, so eval mode is realistic.
    """
    rng, batch_rng = np.random.default_rng([case.seed]), np.random.default_rng([case.seed, step])
    n, d = case.n, case.d
    std = rng.uniform(0.5, 2.0, d)
    mean = case.ratio * std * rng.choice([-1.0, 1.0], d)
    params = {
        "scale": rng.uniform(0.5, 1.5, d),
        "offset": rng.normal(0.0, 0.5, d),
        "mean": mean + 0.1 * std * rng.standard_normal(d),
        "var": std**2 * rng.uniform(0.5, 1.5, d),
    }
    x = mean + std * batch_rng.standard_normal((n, d))
    upstream = batch_rng.standard_normal((n, d))
    exact = {k: quantize(v, case.dtype) for k, v in params.items()}
    return quantize(x, case.dtype), exact, quantize(upstream, case.dtype)


def _kappa(terms_abs: np.ndarray, total: np.ndarray) -> float:
    """``max Σ|t| / max |Σ t|`` (at least 1), the max-norm condition number of a sum."""
    top = float(np.max(np.abs(total), initial=0.0))
    if top <= 1e-12 * float(np.max(terms_abs, initial=0.0)):
        return math.inf  # the sum cancels to rounding (batch size 1 or 2): no relative bound
    return max(1.0, float(np.max(terms_abs, initial=0.0)) / top)


def _conditioning(x: np.ndarray, params: Arrays, g: np.ndarray, momentum: float) -> dict:
    """κ of every quantity of a training-mode call on ``x`` (see :data:`TOLERANCE_REASON`)."""
    x, g = np.asarray(x, np.float64), np.asarray(g, np.float64)
    n, mean, std = len(x), x.mean(0), x.std(0)
    if not np.all(std > 0):
        return dict.fromkeys(QUANTITY_NAMES, math.inf)  # one sample: nothing to normalize by
    ratio = max(1.0, float(np.max(np.abs(mean) / std)))
    xhat = (x - mean) / std
    grad_x = n * g - g.sum(0) - xhat * (g * xhat).sum(0)
    terms = np.abs(n * g) + np.abs(g.sum(0)) + np.abs(xhat * (g * xhat).sum(0))
    old = np.asarray(params["mean"], np.float64)
    return {
        "out": ratio,
        "grad_x": ratio * _kappa(np.max(terms, 0), np.max(np.abs(grad_x), 0)),
        "grad_scale": ratio * _kappa(np.abs(g * xhat).sum(0), (g * xhat).sum(0)),
        "grad_offset": _kappa(np.abs(g).sum(0), g.sum(0)),
        "running_mean": _kappa(
            (1 - momentum) * np.abs(old) + momentum * np.abs(x).mean(0),
            (1 - momentum) * old + momentum * mean,
        ),
        "running_var": ratio,
    }


TRAIN_LENGTHS = {"out": 2, "grad_x": 4, "grad_scale": 3, "grad_offset": 1}
"""n_eff / n of a training-mode call; running mean n + 2, running variance 2n + 2."""
EVAL_LENGTHS = {"out": 4, "grad_x": 3, "running_mean": 1, "running_var": 1}
"""n_eff of an eval-mode call (elementwise roundings); grad_scale n + 4, grad_offset n."""


def case_tolerances(
    case: Case, x: np.ndarray, params: Arrays, upstream: np.ndarray, momentum: float
) -> dict[str, float]:
    """Per quantity, the derived max-norm relative tolerance of ``case`` (last call's inputs).

    float32: ``C u n_eff κ`` (:func:`harness.numerics.difftest.tolerance`); eval cases after
    ``k`` training steps carry the running statistics' ``k (2n + 2)``. Half types: a constant.
    """
    if case.dtype != "float32":
        return dict.fromkeys(QUANTITY_NAMES, tolerance(case.dtype))
    n, kappa = case.n, _conditioning(x, params, upstream, momentum)
    stats = {"running_mean": n + 2, "running_var": 2 * n + 2}
    if case.training and case.steps == 1:
        lengths = {**{q: k * n for q, k in TRAIN_LENGTHS.items()}, **stats}
    else:
        carried = (case.steps - 1) * stats["running_var"] if case.steps > 1 else 0
        lengths = {q: k + carried for q, k in EVAL_LENGTHS.items()}
        lengths |= {"grad_scale": n + 4 + carried, "grad_offset": n}
        kappa["grad_x"] = kappa["running_mean"] = kappa["out"]
    return {q: derived(lengths[q], kappa[q]) for q in QUANTITY_NAMES}


QUANTITY_NAMES = ("out", "grad_x", "grad_scale", "grad_offset", "running_mean", "running_var")
"""The quantities of one BN call (:data:`harness.numerics.reference.QUANTITIES`)."""
