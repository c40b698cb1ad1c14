"""Report-side numbers of bn-numerics, computed from stored cells (no framework, no worker).

Cells are the store's dicts (``backend``, ``device``, ``status``, ``result``); stored floats may
come back as ``None`` (NaN) or ``"inf"`` strings, which :func:`num` turns back into floats.
Cross-backend numbers come from the raw outputs the task kept for a few small cases and from the
per-step parameter files of the trajectory check.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np

from harness.numerics.reference import QUANTITIES
from harness.numerics.trajectory import group_rel, layer_groups, load_npz

Cell = dict[str, Any]
TRAJECTORY_TOL = 1e-5
RELU_RESOLUTION = 1e-6  # float32 BN outputs carry errors of ~1e-7 absolute (the BN cases)
GROWTH_RATIOS = (10.0, 100.0, 1e3, 1e4)


def num(value: Any) -> float:
    """A stored number back as a float (``None`` -> NaN, ``"inf"`` -> inf)."""
    if value is None:
        return math.nan
    return float(value)


def label(cell: Cell) -> str:
    """``backend/device``."""
    return f"{cell['backend']}/{cell['device']}"


def numerics_cells(cells: list[Cell]) -> list[Cell]:
    """Cells whose task finished with numerics results."""
    return [c for c in cells if c["status"] == "ok" and c["result"].get("cases")]


def sym_rel(a: np.ndarray, b: np.ndarray) -> float:
    """Max-norm relative difference of two backends: ``max|a-b| / max(max|a|, max|b|)``."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.size == 0:
        return math.nan
    scale = max(float(np.max(np.abs(a))), float(np.max(np.abs(b))), 1e-30)
    return float(np.max(np.abs(a - b))) / scale


def growth(cell: Cell) -> dict[str, Any]:
    """Error vs mean/std ratio: worst relative error per ratio and the fitted exponent ``k``.

    ``k`` is the slope of log10(error) against log10(ratio) over ratios 10..1e4, so the error
    grows like ratio^k (k ~ 1: the float32 rounding of the mean, of size |mean| u, is what the
    centred inputs inherit).
    """
    points = {
        c["ratio"]: num(c["max_rel"]) for c in cell["result"]["cases"] if c["group"] == "ratio"
    }
    xs = [r for r in GROWTH_RATIOS if r in points and points[r] > 0 and math.isfinite(points[r])]
    slope = math.nan
    if len(xs) >= 2:
        slope = float(np.polyfit(np.log10(xs), np.log10([points[r] for r in xs]), 1)[0])
    return {"errors": {f"{r:g}": v for r, v in points.items()}, "exponent": slope}


def cross_backend(cells: list[Cell]) -> list[dict[str, Any]]:
    """For every case with raw outputs and every pair of backends: per-quantity differences."""
    rows = []
    for a, b in itertools.combinations(cells, 2):
        raw_b = {c["name"]: c.get("raw") for c in b["result"]["cases"]}
        for case in a["result"]["cases"]:
            other = raw_b.get(case["name"])
            if not case.get("raw") or not other:
                continue
            diffs = {q: sym_rel(case["raw"][q], other[q]) for q in QUANTITIES if q in other}
            rows.append({"case": case["name"], "pair": f"{label(a)} vs {label(b)}", **diffs})
    return rows


def _trajectories(cells: list[Cell]) -> dict[str, tuple[list[dict[str, np.ndarray]], np.ndarray]]:
    out = {}
    for cell in cells:
        path = cell["result"].get("trajectory", {}).get("npz", "")
        if path and Path(path).exists():
            out[label(cell)] = load_npz(path)
    return out


def _leader(snaps: dict[str, list[Any]], step: int, groups: dict[str, list[str]]) -> dict[str, Any]:
    best: dict[str, Any] = {"rel": 0.0, "group": "", "pair": ""}
    for (la, sa), (lb, sb) in itertools.combinations(snaps.items(), 2):
        for group, names in groups.items():
            value = group_rel(sa[step], sb[step], names)
            if not value <= best["rel"]:  # NaN leads too
                best = {"rel": value, "group": group, "pair": f"{la} vs {lb}"}
    return best


def divergence(cells: list[Cell]) -> dict[str, Any]:
    """Per step, the largest difference between backends: trainable parameters, running
    statistics (kept apart: their convention differs by design) and loss, read from the .npz."""
    runs = _trajectories(cells)
    if len(runs) < 2:
        return {"steps": [], "missing": sorted({label(c) for c in cells} - set(runs))}
    snaps = {k: v[0] for k, v in runs.items()}
    steps = min(len(s) for s in snaps.values())
    groups = layer_groups(next(iter(snaps.values()))[0])
    trainable = {g: n for g, n in groups.items() if not g.endswith("stats")}
    stats = {g: n for g, n in groups.items() if g.endswith("stats")}
    rows = []
    for step in range(steps):
        losses = [float(v[1][step - 1]) for v in runs.values()] if step else [math.nan]
        spread = max(losses) - min(losses)
        rows.append(
            {
                "step": step,
                "params": _leader(snaps, step, trainable),
                "stats": _leader(snaps, step, stats),
                "loss_abs": spread,
                "loss_rel": spread / max(abs(v) for v in losses) if step else math.nan,
            }
        )
    return {
        "steps": rows,
        "first_params_over": _first_over(rows, "params"),
        "first_stats_over": _first_over(rows, "stats"),
    }


def _first_over(rows: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    for row in rows:
        if not row[key]["rel"] <= TRAJECTORY_TOL:
            return {"step": row["step"], **row[key]}
    return None


def versus_reference(cell: Cell) -> dict[str, Any]:
    """Per step, this backend's largest relative error against the float64 reference, with the
    reference's smallest |ReLU input| of that step (a gate float32 may flip) and its layer."""
    trajectory = cell["result"].get("trajectory", {})
    errors = trajectory.get("ref_rel_error", {})
    if not errors:
        return {"per_step": [], "first_over": None}
    gates = [[math.inf]] + trajectory.get("ref_min_abs_relu_input", [])
    per_step = []
    for step in range(len(next(iter(errors.values())))):
        values = ((g, num(v[step])) for g, v in errors.items())
        group, value = max(values, key=lambda p: math.inf if math.isnan(p[1]) else p[1])
        layer_gates = [num(v) for v in gates[step]] if step < len(gates) else [math.inf]
        layer = int(np.argmin(layer_gates))
        per_step.append(
            {
                "step": step,
                "rel": value,
                "group": group,
                "min_relu_input": layer_gates[layer],
                "relu_layer": layer,
            }
        )
    over = [row for row in per_step if not row["rel"] <= TRAJECTORY_TOL]
    return {"per_step": per_step, "first_over": over[0] if over else None}


def formula_sweep(cell: Cell) -> dict[str, Any]:
    """The |mean|/std sweep of one backend, mapped and at native defaults: worst relative error
    per ratio of each, and the batch-variance formula each used (as the backend reported it).

    Native and mapped calls differ in momentum (which moves only the running statistics, each
    compared in its own convention), epsilon (measured) and the variance formula; where the
    epsilons agree, a different output or gradient error is the formula's, measured.
    """
    cases = cell["result"]["cases"]
    mapped = {c["ratio"]: num(c["max_rel"]) for c in cases if c["group"] == "ratio"}
    native = {
        c["ratio"]: num(c["max_rel"])
        for c in cases
        if c["group"] == "native" and c["name"].startswith("native, ratio")
    }
    return {
        "ratios": sorted(mapped),
        "mapped": {f"{r:g}": mapped.get(r, math.nan) for r in sorted(mapped)},
        "native": {f"{r:g}": native.get(r, math.nan) for r in sorted(mapped)},
        "formula": cell["result"].get("variance_formula", {}),
    }
