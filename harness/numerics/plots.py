"""The bn-numerics plots (matplotlib, Agg): error vs mean/std ratio, divergence vs step."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from harness.numerics.analysis import TRAJECTORY_TOL, label, num
from harness.numerics.cases import FLOAT32_TOL

QUANTITY_STYLES = (
    ("out", "-", "output"),
    ("grad_x", "--", "grad_x"),
    ("grad_scale", ":", "grad_scale"),
)


def _drawable(values: list[float]) -> bool:
    """True when a log axis has something to show (a positive finite value)."""
    return any(math.isfinite(v) and v > 0 for v in values)


def _axes() -> tuple[Any, Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    return plt, fig, ax


def _finish(plt: Any, fig: Any, ax: Any, path: Path, tol: float, ncol: int = 1) -> None:
    ax.axhline(tol, color="grey", lw=0.8, ls="-.", label=f"tolerance {tol:g}")
    ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=ncol)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def ratio_plot(cells: list[dict[str, Any]], path: Path) -> bool:
    """Max-norm relative error against |mean|/std, one colour per backend, log-log.

    Returns False (and draws nothing) when no backend produced a ratio-sweep error.
    """
    cases = [c for cell in cells for c in cell["result"]["cases"] if c["group"] == "ratio"]
    if not _drawable([num(e["rel"]) for c in cases for e in c["errors"].values()]):
        return False
    plt, fig, ax = _axes()
    for i, cell in enumerate(cells):
        own = [c for c in cell["result"]["cases"] if c["group"] == "ratio" and c["errors"]]
        for key, style, name in QUANTITY_STYLES:
            values = [num(c["errors"].get(key, {}).get("rel")) for c in own]
            ax.plot(
                [c["ratio"] for c in own],
                values,
                style,
                color=f"C{i}",
                marker="o",
                ms=3,
                label=f"{label(cell)} {name}",
            )
    ax.set_xscale("log")
    ax.set_xlabel("|mean| / std of the inputs")
    ax.set_ylabel("max-norm relative error vs float64")
    ax.set_title("BN error vs input conditioning (64 x 32, float32, training mode)")
    _finish(plt, fig, ax, path, FLOAT32_TOL, ncol=2)
    return True


def _divergence_series(
    divergence: dict[str, Any], references: dict[str, list[dict[str, Any]]]
) -> list[tuple[Any, ...]]:
    """``(steps, values, style, colour, label)`` of every line of the divergence plot."""
    rows = divergence.get("steps", [])[1:]
    picks = (
        ("params", "-o", "C3", "trainable params, max over pairs"),
        ("stats", "-s", "C1", "running statistics, max over pairs"),
    )
    series = [
        ([r["step"] for r in rows], [r[key]["rel"] for r in rows], style, colour, name)
        for key, style, colour, name in (picks if rows else ())
    ]
    if rows:  # a zero loss difference has no place on a log axis
        loss = [r["loss_rel"] or math.nan for r in rows]
        series.append(([r["step"] for r in rows], loss, "^", "C2", "loss, max rel. difference"))
    for i, (name, per_step) in enumerate(references.items()):
        steps, values = [p["step"] for p in per_step[1:]], [p["rel"] for p in per_step[1:]]
        series.append((steps, values, "--", f"C{(4 + i) % 10}", f"{name} vs float64 reference"))
    return series


def divergence_plot(
    divergence: dict[str, Any], references: dict[str, list[dict[str, Any]]], path: Path
) -> bool:
    """Largest difference between backends per step, and each backend vs float64, log y.

    Returns False (and draws nothing) when every difference is zero or missing.
    """
    series = _divergence_series(divergence, references)
    if not _drawable([v for s in series for v in s[1]]):
        return False
    plt, fig, ax = _axes()
    for steps, values, style, colour, name in series:
        ax.plot(steps, values, style, color=colour, ms=3, label=name)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("training step")
    ax.set_ylabel("max-norm relative difference")
    ax.set_title("Trajectory divergence: same init, same batches")
    _finish(plt, fig, ax, path, TRAJECTORY_TOL)
    return True
