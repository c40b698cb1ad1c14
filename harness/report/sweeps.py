"""Report sections of the sweep suites: a table per backend and metric-against-axis plots.

The axis is the suite's sweep key (``train.batch_size``, ``train.lr``, ``model.init_scale``).
Every number is a mean ± sd over seeds with its 95% t-interval; diverged cells are counted and
marked with ✕ on the plots instead of being averaged in.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from tabulate import tabulate

from harness.claims import (
    batch_mode_gap,
    by_backend,
    final_acc,
    in_steps,
    rounds_to_target,
    steps_per_round,
    sweep_key,
    train_eval_gap,
)
from harness.report.context import ReportContext, series
from harness.report.stats import Summary, cell_key, group, summarize
from harness.report.style import backend_colour, variant_style

Cell = dict[str, Any]
AXIS_LABELS = {
    "train.batch_size": "batch size",
    "train.lr": "learning rate",
    "model.init_scale": "init scale (× canonical kernel)",
    "model.ghost_batch": "ghost batch size g",
}


def samples_per_s(cell: Cell) -> float:
    """Training throughput: samples per second of the steady-state rounds (median)."""
    times = series(cell, "time_s")
    steady = [t for t in (times[1:] or times) if math.isfinite(t) and t > 0]
    if not steady:
        return math.nan
    batch = cell["spec"]["train"]["batch_size"]
    return steps_per_round(cell) * batch / statistics.median(steady)


def seconds_to_target(cell: Cell, target: float) -> float:
    """Measured training seconds (first round's compile included) until ``target``; NaN never."""
    reached = rounds_to_target(cell, target)
    if not math.isfinite(reached) or reached > len(series(cell, "val_acc")):
        return math.nan
    return float(sum(series(cell, "time_s")[: int(reached)]))


def point_rows(ctx: ReportContext) -> list[dict[str, Any]]:
    """One row per backend/device, variant and sweep point: aggregates over seeds."""
    key, target = sweep_key(ctx.suite), ctx.suite.target_acc
    rows = []
    cells = sorted(ctx.trained_cells(), key=lambda c: (c["variant"], cell_key(c, key)))
    for (name, variant, value), members in group_points(cells, key).items():
        ok = [c for c in members if c["status"] == "ok"]
        reached = [rounds_to_target(c, target) for c in members]
        unit = [steps_per_round(c) if in_steps(c) else 1 for c in members]
        rows.append(
            {
                "where": name,
                "variant": variant,
                "value": value,
                "seeds": len(members),
                "ok": len(ok),
                "diverged": sum(c["status"] == "diverged" for c in members),
                "final_val_acc": summarize(final_acc(c) for c in ok),
                "to_target": summarize(r * u for r, u in zip(reached, unit)),
                "reached": sum(r <= len(series(c, "val_acc")) for r, c in zip(reached, members)),
                "seconds_to_target": summarize(seconds_to_target(c, target) for c in ok),
                "samples_per_s": summarize(samples_per_s(c) for c in ok),
                "train_eval_gap": summarize(train_eval_gap(c) for c in ok),
                "batch_mode_gap": summarize(batch_mode_gap(c) for c in ok),
            }
        )
    return rows


def group_points(cells: list[Cell], key: str) -> dict[tuple[str, str, Any], list[Cell]]:
    """Cells grouped by backend/device, variant and sweep value."""
    out: dict[tuple[str, str, Any], list[Cell]] = {}
    for name, members in by_backend(cells).items():
        for (variant, value), part in group(members, "variant", key).items():
            out[(name, variant, value)] = part
    return out


def _ci(s: Summary, scale: float = 100.0, fmt: str = ".1f") -> str:
    if s.n < 2:
        return "-"
    return f"[{s.lo * scale:{fmt}}, {s.hi * scale:{fmt}}]"


def _row(r: dict[str, Any], stepped: bool, batch_mode: bool) -> list[str]:
    diverged = f", {r['diverged']} diverged" if r["diverged"] else ""
    unit_fmt = ".0f" if stepped else ".1f"
    row = [
        r["variant"],
        f"{r['value']:g}",
        f"{r['ok']}/{r['seeds']}{diverged}",
        r["final_val_acc"].text(".2f", 100),
        _ci(r["final_val_acc"], 100, ".2f"),
        f"{r['to_target'].text(unit_fmt)} ({r['reached']}/{r['seeds']})",
        r["seconds_to_target"].text(".2f"),
        r["samples_per_s"].text(".0f"),
        r["train_eval_gap"].text(".2f", 100),
    ]
    return row + ([r["batch_mode_gap"].text(".2f", 100)] if batch_mode else [])


def table(ctx: ReportContext) -> str:
    """Per backend: final accuracy, time to target, throughput and train/eval gaps per point."""
    rows = point_rows(ctx)
    if not rows:
        return ""
    key, target = sweep_key(ctx.suite), ctx.suite.target_acc
    stepped = any(in_steps(c) for c in ctx.cells)
    batch_mode = any(r["batch_mode_gap"].n for r in rows)
    ctx.data["sweep"] = [
        {k: (v.__dict__ if isinstance(v, Summary) else v) for k, v in r.items()} for r in rows
    ]
    headers = [
        "variant",
        AXIS_LABELS.get(key, key),
        "ok/seeds",
        "final val acc %",
        "95% CI",
        f"{'steps' if stepped else 'epochs'} to {target:.0%} (reached)",
        f"s to {target:.0%}",
        "samples/s",
        "full-batch − eval (pp)",
    ] + (["batch-of-B − eval (pp)"] if batch_mode else [])
    parts = [_table_intro(target, stepped, batch_mode)]
    for name in dict.fromkeys(r["where"] for r in rows):
        body = [_row(r, stepped, batch_mode) for r in rows if r["where"] == name]
        parts.append(f"### {name}\n\n" + tabulate(body, headers, "github", disable_numparse=True))
    return "\n\n".join(parts)


def _table_intro(target: float, stepped: bool, batch_mode: bool) -> str:
    unit = "steps" if stepped else "epochs"
    text = (
        "## Results per sweep point\n\n"
        "Mean ± sd over seeds with the 95% t-interval of the mean; diverged cells (NaN/inf "
        f"loss) are counted, not averaged. *{unit} to {target:.0%}*: first evaluation at or "
        "above the target; a cell that never gets there counts as the budget + 1 round. "
        f"*s to {target:.0%}*: measured training seconds including the first round's "
        "compile/warm-up (cells that got there). *samples/s*: training throughput of the "
        "steady-state rounds (median; a cell of a single round has only its first, compile "
        "included). *full-batch − eval*: validation accuracy in training "
        "mode, the whole validation set normalized as one batch, minus eval mode (running "
        "statistics); zero without BatchNorm."
    )
    if batch_mode:
        text += (
            " *batch-of-B − eval*: the same with the validation samples normalized in batches "
            "of the training batch size B (what a BN network sees while it trains; BatchNorm "
            "cells only, first 512 validation samples)."
        )
    return text


def _axes_setup(ax: Any, key: str, values: list[float]) -> None:
    ax.set_xscale("log", base=2 if key in ("train.batch_size", "model.ghost_batch") else 10)
    ax.set_xticks(values)
    ax.set_xticklabels(
        [f"{v:g}" for v in values], fontsize=8, rotation=45 if len(values) > 8 else 0
    )
    ax.minorticks_off()
    ax.grid(alpha=0.3)
    ax.set_xlabel(AXIS_LABELS.get(key, key))


MARKERS = ("o", "s", "^", "D", "v")


def _draw(ax: Any, rows: list[dict[str, Any]], metric: str, scale: float) -> None:
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    for i, variant in enumerate(variants):
        mine = [r for r in rows if r["variant"] == variant and r[metric].n > 0]
        colour = backend_colour(str(rows[0].get("where", ""))) if rows else "C0"
        xs = [r["value"] for r in mine]
        ys = [r[metric].mean * scale for r in mine]
        err = [r[metric].sd * scale for r in mine]
        marker = MARKERS[i % len(MARKERS)]
        style = {"color": colour, "ls": variant_style(variant), "marker": marker, "ms": 4}
        ax.errorbar(xs, ys, yerr=err, capsize=3, label=variant, **style)
        bad = [r["value"] for r in rows if r["variant"] == variant and r["diverged"]]
        if bad:
            ax.plot(
                bad,
                [0.03] * len(bad),
                "x",
                color=colour,
                ms=9,
                mew=2,
                transform=ax.get_xaxis_transform(),
                label=f"{variant}: diverged",
            )


def _reference_lines(ax: Any, suite: Any) -> None:
    ax.axhline(
        suite.target_acc * 100, color="grey", ls=":", lw=1, label=f"target {suite.target_acc:.0%}"
    )
    if "stable_acc" in suite.extra:
        stable = suite.extra["stable_acc"]
        ax.axhline(stable * 100, color="grey", ls="--", lw=1, label=f"stable ≥ {stable:.0%}")


def _panel(ax: Any, rows: list[dict[str, Any]], metric: tuple[str, str, float], suite: Any) -> None:
    name, label, scale = metric
    _draw(ax, rows, name, scale)
    key = sweep_key(suite)
    _axes_setup(ax, key, sorted({r["value"] for r in rows}))
    if name == "samples_per_s":
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1000:g}k"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    else:
        _reference_lines(ax, suite)
    ax.set_ylabel(label)


def plots(ctx: ReportContext) -> str:
    """Final accuracy (and, for batch size, throughput) against the sweep axis, per backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, key = point_rows(ctx), sweep_key(ctx.suite)
    if not rows:
        return ""
    names = list(dict.fromkeys(r["where"] for r in rows))
    metrics = [("final_val_acc", "final val accuracy %", 100.0)]
    if key == "train.batch_size":
        metrics.append(("samples_per_s", "training samples/s", 1.0))
    size = (4.6 * len(names) + 0.6, 3.9 * len(metrics))
    fig, axes = plt.subplots(len(metrics), len(names), figsize=size, squeeze=False, sharey="row")
    for col, name in enumerate(names):
        for row, metric in enumerate(metrics):
            _panel(axes[row, col], [r for r in rows if r["where"] == name], metric, ctx.suite)
        axes[0, col].set_title(name, fontsize=11)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize=9)
    seeds = len({c["spec"]["train"]["seed"] for c in ctx.cells})
    fig.suptitle(f"{ctx.suite.name}: mean ± sd over {seeds} seed(s)", fontsize=12)
    fig.tight_layout(rect=(0, 0.07 if len(metrics) == 1 else 0.04, 1, 1))
    image = ctx.save_figure(fig, "sweep.png", dpi=110)
    plt.close(fig)
    what = "accuracy and throughput" if len(metrics) > 1 else "accuracy"
    return f"## {what.capitalize()} against {AXIS_LABELS.get(key, key)}\n\n![{what}]({image})"
