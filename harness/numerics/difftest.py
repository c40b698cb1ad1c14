"""Differential testing of one training step, layer by layer (CRADLE-style, with float64).

Every backend traces one training step of the same MLP from the same canonical weights on the
same batch (:meth:`harness.backend.Backend.trace_step`); the float64 reference
(:func:`harness.numerics.reference.trace_reference`) traces it too. Per quantity and layer this
module measures the distance between every pair of backends and from each backend to float64
(max-norm relative and CRADLE's mean absolute distance), the rate of change of that distance
along the layers (forward for outputs, backward for gradients), the first layer where it exceeds
a tolerance derived from float32 arithmetic, and, with float64 as an extra voter, the backend
that is off.

Tolerance (max-norm relative), per quantity: ``tol = C * u * n_eff * kappa``, ``u = 2^-24``,
``n_eff`` the length of the reductions the quantity went through (fan-in of each Dense layer,
batch size of each batch statistic and batch-summed gradient, summed along the chain, forward then
backward), ``kappa`` the condition number of its last reduction (``max sum|t| / max|sum t|``;
|mean|/std of the input for BN outputs and statistics), and ``C = 1``: the classical worst-case
bound of a sum of ``n`` terms is ``n * u * sum|t|`` (Higham, Accuracy and Stability, 3.1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.initializers import batch_order, canonical_params
from harness.numerics.reference import trace_layers, trace_reference
from harness.specs import CellSpec, ModelSpec, replace
from harness.tasks.common import load_data, model_for

Arrays = dict[str, np.ndarray]
UNIT_ROUNDOFF = 2.0**-24
C = 1.0
MUTATIONS = ("epsilon", "momentum", "running_var", "placement")
"""Conventions a test may flip in one backend's trace (see :func:`layer_spec`)."""
FORWARD = ("out",)
BACKWARD = ("grad",)
PARAM_GRADS = ("grad_kernel", "grad_bias", "grad_scale", "grad_offset")
STATS = ("mean", "var")
QUANTITIES = (*FORWARD, *BACKWARD, *PARAM_GRADS, *STATS)
TOLERANCE_FORMULA = (
    "tol = C · u · n_eff · κ, C = 1, u = 2^-24 (float32 unit roundoff); n_eff = the reductions "
    "the quantity went through, summed along the chain (fan-in of each Dense layer, batch size "
    "of each batch statistic and batch-summed gradient, the classes of the softmax; forward "
    "layers up to it, then the backward layers down to it); κ = the condition number of its "
    "last reduction, max Σ|t| / max |Σ t| (|mean|/std of the input for BN outputs and running "
    "statistics), at least 1. Errors are max-norm relative, max|a − b| / max|b|."
)


def layer_spec(
    spec: ModelSpec, native: tuple[float, float] | None = None, mutate: str = ""
) -> ModelSpec:
    """The spec a backend builds its traced MLP from.

    ``native`` = the framework's own BN ``(momentum, epsilon)`` in the core convention. A
    ``mutate`` flips one convention of the layers actually built (tests only): ``epsilon`` x100,
    ``momentum`` 0.1 -> 0.01, ``placement`` before <-> after; ``running_var`` is the adapter's
    own (the variance it feeds to the running average).
    """
    if mutate and mutate not in MUTATIONS:
        raise ValueError(f"unknown mutation {mutate!r}; valid: {', '.join(MUTATIONS)}")
    if native is not None and spec.norm == "batchnorm":
        spec = replace(spec, bn_momentum=native[0], bn_epsilon=native[1])
    if mutate == "epsilon":
        spec = replace(spec, bn_epsilon=spec.bn_epsilon * 100)
    if mutate == "momentum":
        spec = replace(spec, bn_momentum=spec.bn_momentum / 10)
    if mutate == "placement":
        spec = replace(spec, placement="after" if spec.placement == "before" else "before")
    return spec


def key_order(spec: ModelSpec) -> list[str]:
    """Quantities in the order a step computes them: forward outputs (with each BN layer's
    running statistics), the loss, then backward from the logits: each layer's output gradient
    followed by its parameter gradients."""
    layers, keys = trace_layers(spec), []
    for layer in layers:
        keys += [f"{layer}/out"] + (
            [f"{layer}/mean", f"{layer}/var"] if _is_bn(spec, layer) else []
        )
    keys.append("loss")
    for layer in reversed(layers):
        keys.append(f"{layer}/grad")
        if layer.startswith("dense"):
            keys += [f"{layer}/grad_kernel", f"{layer}/grad_bias"]
        elif layer.startswith("norm"):
            keys += [f"{layer}/grad_scale", f"{layer}/grad_offset"]
    return keys


def _is_bn(spec: ModelSpec, layer: str) -> bool:
    return layer.startswith("norm") and spec.norm == "batchnorm"


def reduction_lengths(spec: ModelSpec, batch: int) -> dict[str, int]:
    """``n_eff`` of every key of :func:`key_order` (see the module docstring)."""
    layers, sizes, n = trace_layers(spec), spec.layer_sizes(), {}
    forward = 0
    for layer in layers:
        before = forward
        kind, index = layer.split("_")
        forward += {"dense": sizes[int(index)][0], "norm": batch, "act": 1}[kind]
        n[f"{layer}/out"] = forward
        n[f"{layer}/mean"] = n[f"{layer}/var"] = before + batch
    n["loss"] = backward = forward + spec.num_classes
    for layer in reversed(layers):
        kind, index = layer.split("_")
        n[f"{layer}/grad"] = backward
        for leaf in (*PARAM_GRADS[:2], *PARAM_GRADS[2:]):
            n[f"{layer}/{leaf}"] = backward + batch
        backward += {"dense": sizes[int(index)][1], "norm": 2 * batch, "act": 1}[kind]
    return n


def tolerance(n_eff: int, kappa: float) -> float:
    """``C * u * n_eff * kappa``: the derived max-norm relative tolerance of one quantity."""
    return C * UNIT_ROUNDOFF * n_eff * max(1.0, kappa)


def distance(a: Any, b: Any) -> dict[str, float]:
    """Max-norm relative (to ``b``) and CRADLE's mean absolute distance between two arrays."""
    x, r = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if x.shape != r.shape:
        return {"rel": float("inf"), "mae": float("inf")}
    diff = np.abs(x - r)
    scale = max(float(np.max(np.abs(r), initial=0.0)), 1e-30)
    return {"rel": float(diff.max(initial=0.0)) / scale, "mae": float(diff.mean())}


def against_reference(spec: ModelSpec, batch: int, trace: Arrays, ref: Arrays) -> dict[str, Any]:
    """Per key: distance of a backend's trace to float64, ``n_eff``, ``kappa``, tolerance and
    ratio (distance / tolerance), in :func:`key_order`."""
    lengths, out = reduction_lengths(spec, batch), {}
    for key in key_order(spec):
        if key not in trace or key not in ref:
            continue
        kappa = float(ref.get(f"kappa/{key}", 1.0))
        row = {**distance(trace[key], ref[key]), "n_eff": lengths[key], "kappa": kappa}
        row["tol"] = tolerance(lengths[key], kappa)
        row["ratio"] = row["rel"] / row["tol"]
        out[key] = row
    return out


def rates(values: list[float]) -> list[float]:
    """CRADLE's rate of change along layers, ``(d_k - d_{k-1}) / (d_{k-1} + 1e-7)``."""
    return [float("nan")] + [(b - a) / (a + 1e-7) for a, b in zip(values, values[1:])]


def diagnose(errors: dict[str, dict[str, Any]], order: list[str]) -> dict[str, Any]:
    """The first key where some backend is out of tolerance against float64, and whom to blame.

    Voters are the backends and float64: the backends out of tolerance are blamed when they are
    fewer than the voters that agree with float64; when every backend is out, the disagreement
    is shared (a convention of the reference or all backends), and none is blamed alone.
    """
    for key in order:
        off = sorted(b for b, e in errors.items() if key in e and not e[key]["ratio"] <= 1)
        if not off:
            continue
        agree = len(errors) - len(off) + 1  # float64 votes with the backends that agree
        layer, _, quantity = key.rpartition("/") if "/" in key else ("", "", key)
        return {
            "key": key,
            "layer": layer,
            "quantity": quantity,
            "off": off,
            "blamed": off if len(off) < agree else [],
            "text": _blame_text(key, off, len(off) < agree),
        }
    return {
        "key": "",
        "layer": "",
        "quantity": "",
        "off": [],
        "blamed": [],
        "text": "all within tolerance",
    }


def _blame_text(key: str, off: list[str], majority: bool) -> str:
    names = ", ".join(f"`{b}`" for b in off)
    if majority:
        return f"{names} off at `{key}` (the other backends and float64 agree)"
    return f"every backend ({names}) off float64 at `{key}`: a shared convention, none blamed"


def first_per_quantity(errors: dict[str, Any], order: list[str]) -> dict[str, str]:
    """For one backend: per quantity, the first key (in ``order``) out of tolerance."""
    out: dict[str, str] = {}
    for key in order:
        quantity = key.rpartition("/")[2]
        if key in errors and not errors[key]["ratio"] <= 1 and quantity not in out:
            out[quantity] = key
    return out


VARIANTS = {
    "bn-before": {"norm": "batchnorm", "placement": "before"},
    "bn-after": {"norm": "batchnorm", "placement": "after"},
    "no-bn": {"norm": "none"},
}
"""The MLPs traced: the cell's MLP with BN before / after the activation, and without BN."""


def trace_cases(base: ModelSpec) -> list[tuple[str, str, ModelSpec]]:
    """``(variant, mode, spec)``: every variant mapped, and the BN ones at native defaults."""
    out = []
    for variant, changes in VARIANTS.items():
        spec = replace(base, **changes)
        out += [
            (variant, mode, spec)
            for mode in (("mapped", "native") if spec.has_norm else ("mapped",))
        ]
    return out


def run_difftest(backend: Any, cell: CellSpec, unbiased: bool) -> dict[str, Any]:
    """The worker's part: trace every case on the cell's first canonical batch, compare with
    float64 (mapped: in this backend's measured running-variance rule; native: the core's
    biased rule, so every native convention shows), keep the arrays in an ``.npz`` for the
    report's pairwise comparison, and return the compact per-key distances."""
    data = load_data(cell.data)
    idx = batch_order(len(data.y_train), cell.train.batch_size, 1, cell.train.seed)[0][0]
    x, y, batch = data.x_train[idx], data.y_train[idx], len(idx)
    results, arrays = {}, {}
    for variant, mode, spec in trace_cases(model_for(cell, data)):
        params = canonical_params(spec, cell.train.seed)
        trace = backend.trace_step(spec, params, x, y, native=mode == "native")
        ref = trace_reference(spec, params, x, y, unbiased=unbiased and mode == "mapped")
        results[f"{variant}/{mode}"] = {
            "unbiased_reference": unbiased and mode == "mapped",
            "errors": against_reference(spec, batch, trace, ref),
        }
        arrays.update(
            {f"{variant}/{mode}/{k}": np.asarray(v, np.float32) for k, v in trace.items()}
        )
    folder = cell.extra.get("artifacts") or ""
    path = Path(folder) / f"difftest-{cell.backend}-{cell.device}.npz" if folder else None
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **arrays)  # type: ignore[arg-type]
    return {"batch": batch, "cases": results, "npz": str(path.resolve()) if path else ""}
