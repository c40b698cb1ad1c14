"""Report-side numbers of bn-numerics, computed from stored cells (no framework, no worker).

Cells are the store's dicts (``backend``, ``device``, ``status``, ``result``); stored floats may
come back as ``None`` (NaN) or ``"inf"`` strings, which :func:`num` turns back into floats.
Cross-backend numbers come from the raw outputs the task kept for a few small cases and from the
snapshots the trajectory check stored (:mod:`harness.numerics.lockstep`); every tolerance is
the derived one the worker recorded (:mod:`harness.numerics.drift`).
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np

from harness.numerics.reference import QUANTITIES
from harness.numerics.trajectory import group_rel, layer_groups, load_npz
from harness.reference import ReferenceMLP
from harness.specs import ModelSpec

Cell = dict[str, Any]
Params = dict[str, np.ndarray]
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


def _trajectories(cells: list[Cell]) -> dict[str, tuple[dict[int, Params], dict[str, Any]]]:
    out = {}
    for cell in cells:
        path = cell["result"].get("trajectory", {}).get("npz", "")
        if path and Path(path).exists():
            out[label(cell)] = load_npz(path)
    return out


def _corrected(snap: Params, extra: dict[str, Any], step: int) -> Params:
    """A snapshot with its running variance moved to the biased convention: float64's shift
    between the conventions at that step (zero for a biased backend) is subtracted."""
    shifts = {
        k.split("/", 1)[1]: v for k, v in extra.items() if k.startswith(f"var_shift{step:03d}/")
    }
    return {k: v - shifts[k] if k in shifts else v for k, v in snap.items()}


def _tol(cell: Cell, group: str, step: int) -> float:
    values = cell["result"]["trajectory"].get("tolerance", {}).get(group, [])
    return num(values[step]) if step < len(values) else math.nan


def _leader(
    snaps: dict[str, Params], tols: dict[str, Any], groups: dict[str, list[str]]
) -> dict[str, Any]:
    """The pair and group furthest over (or nearest to) the pair's tolerance: the sum of both
    backends' tolerances against float64 (each is within its own of float64)."""
    best: dict[str, Any] = {"rel": 0.0, "tol": math.nan, "ratio": -1.0, "group": "", "pair": ""}
    for (la, sa), (lb, sb) in itertools.combinations(snaps.items(), 2):
        for group, names in groups.items():
            value, tol = group_rel(sa, sb, names), tols[la](group) + tols[lb](group)
            ratio = value / tol if tol > 0 else math.inf
            if not ratio <= best["ratio"]:  # NaN leads too
                best = {"rel": value, "tol": tol, "ratio": ratio, "group": group}
                best["pair"] = f"{la} vs {lb}"
    return best


def divergence(cells: list[Cell]) -> dict[str, Any]:
    """At every step all backends stored, the largest difference between backends: trainable
    parameters, and running statistics corrected to one variance convention (float64's shift
    between the conventions taken off), each against the pair's derived tolerance; and loss."""
    runs = _trajectories(cells)
    if len(runs) < 2:
        return {"steps": [], "missing": sorted({label(c) for c in cells} - set(runs))}
    by_label = {label(c): c for c in cells if label(c) in runs}
    common = sorted(set.intersection(*(set(v[0]) for v in runs.values())))
    groups = layer_groups(next(iter(runs.values()))[0][0])
    trainable = {g: n for g, n in groups.items() if not g.endswith("stats")}
    stats = {g: n for g, n in groups.items() if g.endswith("stats")}
    rows = []
    for step in common:
        snaps = {k: _corrected(v[0][step], v[1], step) for k, v in runs.items()}
        tols = {k: (lambda g, c=c, s=step: _tol(c, g, s)) for k, c in by_label.items()}
        losses = [float(v[1]["loss"][step - 1]) for v in runs.values()] if step else [math.nan]
        spread = max(losses) - min(losses)
        rows.append(
            {
                "step": step,
                "params": _leader(snaps, tols, trainable),
                "stats": _leader(snaps, tols, stats),
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
        if row["step"] and not row[key]["rel"] <= row[key]["tol"]:
            return {"step": row["step"], **row[key]}
    return None


def versus_reference(cell: Cell) -> dict[str, Any]:
    """Per step, this backend's group furthest over (or nearest to) its derived tolerance
    against float64, with the reference's smallest |ReLU input| of that step; the first step
    over the tolerance, with the ReLU gates the worker found flipped there."""
    trajectory = cell["result"].get("trajectory", {})
    errors, tols = trajectory.get("ref_rel_error", {}), trajectory.get("tolerance", {})
    if not errors:
        return {"per_step": [], "first_over": None}
    gates = [[math.inf]] + trajectory.get("ref_min_abs_relu_input", [])
    per_step = []
    for step in range(len(next(iter(errors.values())))):
        values = []
        for g, v in errors.items():
            tol = num(tols[g][step]) if g in tols else math.nan
            rel = num(v[step])
            values.append((rel / tol if tol > 0 else (0.0 if rel == 0 else math.inf), g, rel, tol))
        ratio, group, value, tol = max(values, key=lambda p: math.inf if math.isnan(p[0]) else p[0])
        layer_gates = [num(v) for v in gates[step]] if step < len(gates) else [math.inf]
        layer = int(np.argmin(layer_gates))
        per_step.append(
            {
                "step": step,
                "rel": value,
                "tol": tol,
                "ratio": ratio,
                "group": group,
                "min_relu_input": layer_gates[layer],
                "relu_layer": layer,
            }
        )
    first = trajectory.get("first_over")
    if first:
        first = {**per_step[first["step"]], **first, "flips": trajectory.get("relu_flips")}
    return {"per_step": per_step, "first_over": first}


def _eval_logits(cell: Cell, params: Params, x: np.ndarray) -> np.ndarray:
    """Eval-mode logits of the cell's MLP with ``params`` (float64, running statistics)."""
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in cell["spec"]["model"].items()}
    sizes = [params[f"dense_{i}/kernel"].shape for i in range(len(fields["hidden_sizes"]) + 1)]
    spec = ModelSpec(**{**fields, "input_size": sizes[0][0], "num_classes": sizes[-1][1]})
    return ReferenceMLP(spec, params).forward(x, training=False)[0]


def eval_effect(cells: list[Cell]) -> list[dict[str, Any]]:
    """Per stored step and pair of backends whose running-variance conventions differ: the
    largest difference of their eval-mode logits on the stored eval batch, and the same with
    the first backend given the second's running variance (what remains is everything else)."""
    runs, by_label = _trajectories(cells), {label(c): c for c in cells}
    fed = {
        k: c["result"]["conventions"]["core"].get("variance", {}).get("fed")
        for k, c in by_label.items()
    }
    rows = []
    for (la, (sa, ea)), (lb, (sb, _)) in itertools.combinations(runs.items(), 2):
        if fed.get(la) == fed.get(lb):
            continue
        x = np.asarray(ea["eval_x"], np.float64)
        for step in sorted(set(sa) & set(sb)):
            if not step:
                continue
            a, b = _eval_logits(by_label[la], sa[step], x), _eval_logits(by_label[lb], sb[step], x)
            swapped = {k: sb[step][k] if k.endswith("/var") else v for k, v in sa[step].items()}
            given = _eval_logits(by_label[la], swapped, x)
            rows.append(
                {
                    "step": step,
                    "pair": f"{la} ({fed[la]}) vs {lb} ({fed[lb]})",
                    "logits": float(np.max(np.abs(a - b))),
                    "given_var": float(np.max(np.abs(given - b))),
                    "scale": float(np.max(np.abs(b))),
                }
            )
    return rows


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
