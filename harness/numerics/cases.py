"""The BN cases every backend runs, their seeded inputs, and the pass/fail tolerances.

Inputs are drawn with seeded NumPy and rounded to the case's dtype *before* they reach either the
backend or the reference, so both see exactly the same numbers and input rounding never counts as
error. ``ratio`` is |mean|/std of every feature of ``x``: 1 is well-conditioned, 1e4 makes the
batch mean cancel catastrophically in float32.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

Arrays = dict[str, np.ndarray]

UNIT_ROUNDOFF = {"float32": 2.0**-24, "float16": 2.0**-11, "bfloat16": 2.0**-8}
FLOAT32_TOL = 1e-5
HALF_ULPS = 8
TOLERANCE_REASON = (
    "float32: max-norm relative error <= 1e-5, the cross-framework tolerance measured for "
    "well-conditioned cases (batch >= 16, |mean|/std <= 10; docs/numerics-conventions.md), "
    "about 170 unit roundoffs (u = 2^-24 = 6.0e-8): room for reductions over up to 256 "
    "samples and for rsqrt approximations, yet 100x below the error of a wrong convention. "
    f"float16 and bfloat16: {HALF_ULPS} unit roundoffs of the type (u = 2^-11 and 2^-8): "
    "each stored result is rounded once to the half type (<= 1 u of the max-norm), and the few "
    "half-precision operations of the normalization and of the gradients add a handful more "
    "when the batch reductions are accumulated in float32; reductions accumulated in the half "
    "type itself, whose error grows with the batch size, would exceed it."
)
WELL_CONDITIONED = "batch >= 16 and |mean|/std <= 10"


def tolerance(dtype: str) -> float:
    """Max-norm relative tolerance for a well-conditioned case in ``dtype``."""
    return FLOAT32_TOL if dtype == "float32" else HALF_ULPS * UNIT_ROUNDOFF[dtype]


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
    "variant": "Layer variants a backend offers (batch renormalization), 64 x 32, float32",
    "dtype": "Half precision, 64 x 256, training",
}
RATIOS = (1.0, 3.0, 10.0, 30.0, 100.0, 1e3, 1e4)
"""The |mean|/std sweep, mapped and at native defaults."""
VARIANTS = ("renorm",)
"""Layer variants run where the backend offers them (:meth:`Backend.bn_variants`)."""


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
