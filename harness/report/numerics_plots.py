"""The bn-numerics plots (matplotlib, Agg): error vs mean/std ratio, divergence vs step.

Each backend has its colour of the shared palette (:mod:`harness.report.style`), the same as in
every other report; figures are saved through the report context in every chosen format.
"""

from __future__ import annotations

import math
from typing import Any

from harness.numerics.analysis import label, num
from harness.report.context import ReportContext
from harness.report.style import backend_colour

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


def _finish(
    ctx: ReportContext, plt: Any, fig: Any, ax: Any, name: str, tol: Any, ncol: int = 1
) -> str:
    """Derived-tolerance curve ``(xs, ys)``, log y axis, legend; save in every chosen format;
    the file to link."""
    ax.plot(*tol, color="grey", lw=0.8, ls="-.", label="derived tolerance")
    ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=ncol)
    fig.tight_layout()
    image = ctx.save_figure(fig, name, dpi=110)
    plt.close(fig)
    return image


def ratio_plot(ctx: ReportContext, cells: list[dict[str, Any]]) -> str:
    """``error_vs_ratio``: max-norm relative error against |mean|/std, colour = backend,
    line style = quantity, log-log; the file to link.

    Returns ``""`` (and draws nothing) when no backend produced a ratio-sweep error.
    """
    cases = [c for cell in cells for c in cell["result"]["cases"] if c["group"] == "ratio"]
    if not _drawable([num(e["rel"]) for c in cases for e in c["errors"].values()]):
        return ""
    plt, fig, ax = _axes()
    for cell in cells:
        own = [c for c in cell["result"]["cases"] if c["group"] == "ratio" and c["errors"]]
        for key, style, name in QUANTITY_STYLES:
            values = [num(c["errors"].get(key, {}).get("rel")) for c in own]
            ax.plot(
                [c["ratio"] for c in own],
                values,
                style,
                color=backend_colour(cell["backend"]),
                marker="o",
                ms=3,
                label=f"{label(cell)} {name}",
            )
    ax.set_xscale("log")
    ax.set_xlabel("|mean| / std of the inputs")
    ax.set_ylabel("max-norm relative error vs float64")
    ax.set_title("BN error vs input conditioning (64 x 32, float32, training mode)")
    first = [c for c in cells[0]["result"]["cases"] if c["group"] == "ratio" and c["errors"]]
    tol = ([c["ratio"] for c in first], [num(c["errors"]["out"].get("tol")) for c in first])
    return _finish(ctx, plt, fig, ax, "error_vs_ratio.png", tol, ncol=2)


def _divergence_series(
    divergence: dict[str, Any], references: dict[str, list[dict[str, Any]]]
) -> list[tuple[Any, ...]]:
    """``(steps, values, style, colour, label)`` of every line of the divergence plot."""
    rows = divergence.get("steps", [])[1:]
    picks = (
        ("params", "-o", "0.15", "trainable params, max over pairs"),
        ("stats", "-s", "0.45", "running statistics, max over pairs"),
    )
    series = [
        ([r["step"] for r in rows], [r[key]["rel"] for r in rows], style, colour, name)
        for key, style, colour, name in (picks if rows else ())
    ]
    if rows:  # a zero loss difference has no place on a log axis
        loss = [r["loss_rel"] or math.nan for r in rows]
        series.append(([r["step"] for r in rows], loss, "^", "0.65", "loss, max rel. difference"))
    for name, per_step in references.items():
        steps, values = [p["step"] for p in per_step[1:]], [p["rel"] for p in per_step[1:]]
        colour = backend_colour(name)
        series.append((steps, values, "--", colour, f"{name} vs float64 reference"))
    return series


def divergence_plot(
    ctx: ReportContext, divergence: dict[str, Any], references: dict[str, list[dict[str, Any]]]
) -> str:
    """``divergence``: largest difference between backends per step (grey shades: they are
    no backend's) and each backend vs float64 (its colour), log y; the file to link.

    Returns ``""`` (and draws nothing) when every difference is zero or missing.
    """
    series = _divergence_series(divergence, references)
    if not _drawable([v for s in series for v in s[1]]):
        return ""
    plt, fig, ax = _axes()
    for steps, values, style, colour, name in series:
        ax.plot(steps, values, style, color=colour, ms=3, label=name)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("training step")
    ax.set_ylabel("max-norm relative difference")
    ax.set_title("Trajectory divergence: same init, same batches")
    first = next(iter(references.values()), [])[1:]
    tol = ([p["step"] for p in first], [num(p.get("tol")) for p in first])
    return _finish(ctx, plt, fig, ax, "divergence.png", tol)
