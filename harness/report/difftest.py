"""Report section of bn-numerics: differential testing of one training step, layer by layer.

Per traced MLP (BN before / after the activation, no BN) and mode (conventions mapped, each
framework's native defaults): every backend's distance to float64 per layer and quantity in
units of its derived tolerance, the pairwise distances between backends (from the traces'
``.npz`` when present), CRADLE's rate of change, the first divergent layer and the blamed backend.
"""

from __future__ import annotations

import math
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
from tabulate import tabulate

from harness.numerics import analysis as an
from harness.numerics import difftest as dt
from harness.report.context import ReportContext


def _traces(cells: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {an.label(c): c["result"]["difftest"] for c in cells}


def _arrays(path: str) -> dict[str, np.ndarray]:
    if not path or not Path(path).exists():
        return {}
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def _pairs(traces: dict[str, Any], case: str, keys: list[str]) -> dict[str, dict[str, float]]:
    """Max-norm relative distance between every pair of backends per key (None without npz)."""
    arrays = {b: _arrays(t.get("npz", "")) for b, t in traces.items()}
    out: dict[str, dict[str, float]] = {}
    for a, b in combinations(sorted(arrays), 2):
        if arrays[a] and arrays[b]:
            out[f"{a} vs {b}"] = {
                k: dt.distance(arrays[a][f"{case}/{k}"], arrays[b][f"{case}/{k}"])["rel"]
                for k in keys
                if f"{case}/{k}" in arrays[a] and f"{case}/{k}" in arrays[b]
            }
    return out


def _g(value: float) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.1e}"


def _case_table(traces: dict[str, Any], case: str) -> tuple[str, dict[str, Any]]:
    errors = {b: t["cases"][case]["errors"] for b, t in traces.items() if case in t["cases"]}
    keys = [k for k in next(iter(errors.values()))]
    pairs = _pairs(traces, case, keys)
    rates = {b: dict(zip(keys, dt.rates([e[k]["rel"] for k in keys]))) for b, e in errors.items()}
    headers = ["quantity", "n_eff", "κ", "tol", *(f"{b} vs f64 (ratio, R)" for b in errors), *pairs]
    rows = []
    for key in keys:
        first = next(iter(errors.values()))[key]
        row = [f"`{key}`", first["n_eff"], f"{first['kappa']:.2g}", _g(first["tol"])]
        for b, e in errors.items():
            mark = "**" if e[key]["ratio"] > 1 else ""
            row.append(
                f"{mark}{_g(e[key]['rel'])} ({e[key]['ratio']:.2g}){mark}, {rates[b][key]:+.1f}"
            )
        row += [_g(p.get(key, float("nan"))) for p in pairs.values()]
        rows.append(row)
    found = dt.diagnose(errors, keys)
    table = tabulate(rows, headers, tablefmt="github", disable_numparse=True)
    return table, {"first": found, "pairs": pairs}


def _native(traces: dict[str, Any], case: str) -> str:
    rows = []
    for backend, trace in traces.items():
        errors = trace["cases"].get(case, {}).get("errors", {})
        first = dt.first_per_quantity(errors, list(errors))
        shown = ", ".join(f"{q}: `{k}`" for q, k in first.items()) or "none"
        rows.append([f"`{backend}`", shown])
    return tabulate(rows, ["backend", "first out-of-tolerance key per quantity"], tablefmt="github")


def difftest(ctx: ReportContext) -> str:
    """Per-layer forward/backward differential test of one training step, against float64."""
    cells = [c for c in an.numerics_cells(ctx.cells) if "cases" in c["result"].get("difftest", {})]
    lines = ["## Differential test of one training step, layer by layer", ""]
    missing = [an.label(c) for c in an.numerics_cells(ctx.cells) if c not in cells]
    if not cells:
        return "\n".join([*lines, "No backend traced a step (no `trace_step`).", ""])
    traces = _traces(cells)
    batch = next(iter(traces.values()))["batch"]
    lines += [
        f"Each backend trains one step of each MLP from the canonical weights on the same batch "
        f"of {batch}; every layer's output (forward), the loss gradient w.r.t. it (backward), the "
        "parameter gradients and the running statistics are compared with a float64 reference "
        "and between backends. Cells: max-norm relative distance to float64 (ratio to the "
        "tolerance; **bold** when over) and CRADLE's rate of change R along the layers; last "
        "columns: distance between two backends. Mapped: float64 follows each backend's "
        "measured running-variance rule; native: each framework's own BN momentum, epsilon and "
        "variance formula against the core's mapped float64.",
        "",
        f"Tolerance: {dt.TOLERANCE_FORMULA}",
        "",
    ]
    found: dict[str, Any] = {}
    for case in next(iter(traces.values()))["cases"]:
        table, info = _case_table(traces, case)
        found[case] = info["first"]
        lines += [f"### `{case}`", "", f"First divergence: {info['first']['text']}.", ""]
        lines += [table if case.endswith("mapped") else _native(traces, case), ""]
    if missing:
        lines.append(f"No trace from: {', '.join(f'`{m}`' for m in missing)}.")
    ctx.data["difftest"] = found
    return "\n".join(lines)
