"""Derived tolerances of the trajectory check, per step, and the ReLU-boundary diagnosis.

After ``k`` steps a float32 parameter differs from the float64 one by the rounding of each of
its ``k`` updates (the update's own relative error, the differential test's ``u n_eff`` of that
layer's gradient, :func:`harness.numerics.difftest.tolerance`, times the update's size) plus one
rounding of the parameter per step. Relative to the parameters (max-norm), for a trainable
layer: ``tol_k = tolerance(n_eff, 1) * path_k / max|p_k| + k u``, ``path_k`` the summed max-norm
of the layer's updates so far (measured on the backend's own steps). A running statistic tracks
a batch statistic (``tolerance(n_eff, 1)`` of that statistic, which the moving average does not
compound) of an input that carries the drift of the layers before it, twice over for the
variance: ``tol = tolerance(n_eff, 1) + 2 * sum of the earlier layers' tol_k``. First order: a
float32 error that changes the next step's gradient by more than its own size (a ReLU gate
flipped by rounding) is a divergence, which is what the check looks for.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.numerics.difftest import UNIT_ROUNDOFF, reduction_lengths, tolerance
from harness.specs import ModelSpec

Params = dict[str, np.ndarray]
NEAR_ZERO = "|z64| <= tolerance(n_eff of the ReLU input, 1) * max|z64|"


def group_lengths(spec: ModelSpec, batch: int, groups: dict[str, list[str]]) -> dict[str, int]:
    """``n_eff`` of each parameter group: its gradient's reduction length (a statistic's own)."""
    lengths = reduction_lengths(spec, batch)
    out = {}
    for group in groups:
        layer = group.split()[0]
        key = {"dense": "grad_kernel", "norm": "grad_scale"}[layer.split("_")[0]]
        out[group] = lengths[f"{layer}/var" if group.endswith("stats") else f"{layer}/{key}"]
    return out


class Drift:
    """The running per-group tolerance of one backend's trajectory against float64."""

    def __init__(self, spec: ModelSpec, batch: int, groups: dict[str, list[str]]) -> None:
        """``groups``: :func:`harness.numerics.trajectory.layer_groups` of the parameters."""
        self.groups, self.lengths = groups, group_lengths(spec, batch, groups)
        self.path = dict.fromkeys(groups, 0.0)

    def step(self, step: int, before: Params, after: Params) -> dict[str, float]:
        """Account for one update (``before`` -> ``after``) and return every group's tol."""
        tols: dict[str, float] = {}
        earlier = 0.0
        for group, names in self.groups.items():
            if group.endswith("stats"):
                tols[group] = tolerance(self.lengths[group], 1.0) + 2 * earlier
                continue
            moved = max(float(np.max(np.abs(after[n] - before[n]))) for n in names)
            self.path[group] += moved
            scale = max(max(float(np.max(np.abs(after[n]))) for n in names), 1e-30)
            tols[group] = (
                tolerance(self.lengths[group], 1.0) * self.path[group] / scale
                + step * UNIT_ROUNDOFF
            )
            earlier += tols[group]
        return tols


def relu_input_key(spec: ModelSpec, layer: int) -> str:
    """The trace key of hidden layer ``layer``'s activation input."""
    before = spec.has_norm and spec.placement == "before"
    return f"norm_{layer}/out" if before else f"dense_{layer}/out"


def relu_flips(
    spec: ModelSpec, batch: int, traced: dict[str, np.ndarray], ref_inputs: list[np.ndarray]
) -> dict[str, Any]:
    """Per hidden layer: entries whose sign differs between the backend's own ReLU inputs
    (``traced``, :meth:`Backend.trace_step`) and float64's, and how many of those are within
    the float32 error bound of zero (:data:`NEAR_ZERO`)."""
    lengths = reduction_lengths(spec, batch)
    layers = []
    for i, z64 in enumerate(ref_inputs):
        key = relu_input_key(spec, i)
        z32 = np.asarray(traced.get(key, np.full_like(z64, np.nan)), np.float64)
        bound = tolerance(lengths[key], 1.0) * float(np.max(np.abs(z64)))
        flipped = (z32 > 0) != (z64 > 0)
        layers.append(
            {
                "layer": i,
                "flipped": int(flipped.sum()),
                "near_zero": int((flipped & (np.abs(z64) <= bound)).sum()),
                "bound": bound,
                "min_abs": float(np.min(np.abs(z64))),
                "flipped_abs": float(np.max(np.abs(z64[flipped]), initial=0.0)),
            }
        )
    flipped = sum(x["flipped"] for x in layers)
    near = sum(x["near_zero"] for x in layers)
    return {
        "layers": layers,
        "flipped": flipped,
        "near_zero": near,
        "relu_cause": flipped > 0 and near == flipped,
    }
