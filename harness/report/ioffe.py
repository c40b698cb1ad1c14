"""The ioffe2015 report section: the paper's Figure 1 (a, b, c) and a table, per backend.

(a) validation ("test") accuracy against training step, mean over seeds; (b, c) the 15th, 50th
and 85th percentiles of the input of one sigmoid of the last hidden layer over a fixed probe
batch, in eval mode, without and with BN, for seed 0 (one network, as in the paper).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from tabulate import tabulate

from harness.claims import by_backend, describe, final_acc, input_drift, roles, steps_to_target
from harness.report.context import ReportContext, series
from harness.report.stats import summarize
from harness.report.style import backend_colour, variant_style

Cell = dict[str, Any]


def _steps(cell: Cell) -> np.ndarray:
    per_round = int(cell["result"].get("steps_per_round") or 1)
    return np.arange(1, len(series(cell, "val_acc")) + 1) * per_round


def _legend(ax: Any, empty: str = "no data") -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, empty, ha="center", va="center", transform=ax.transAxes, wrap=True)


def _accuracy_panel(ax: Any, cells: list[Cell], pair: tuple[str, str], name: str) -> None:
    for variant in pair:
        mine = [c for c in cells if c["variant"] == variant and c["status"] == "ok"]
        if not mine:
            continue
        length = min(len(series(c, "val_acc")) for c in mine)
        acc = np.mean([series(c, "val_acc")[:length] for c in mine], axis=0) * 100
        style = {"color": backend_colour(name), "linestyle": variant_style(variant)}
        ax.plot(_steps(mine[0])[:length], acc, **style, label=f"{variant} (n={len(mine)})")
    ax.set_title(f"(a) {name}: validation accuracy, mean over seeds", fontsize=10)
    ax.set_xlabel("training step")
    ax.set_ylabel("accuracy %")
    ax.set_ylim(max(0.0, ax.get_ylim()[0]), 100)
    _legend(ax)
    ax.grid(alpha=0.3)


def _percentile_panel(ax: Any, cells: list[Cell], variant: str, title: str) -> None:
    probe = next(
        (
            c["result"].get("probe")
            for c in cells
            if c["variant"] == variant and c["spec"]["train"]["seed"] == 0 and c["status"] == "ok"
        ),
        None,
    )
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("training step")
    ax.set_ylabel("sigmoid input")
    ax.grid(alpha=0.3)
    if not probe or not probe.get("p50"):
        _legend(ax, (probe or {}).get("unavailable", "no data"))
        return
    for p, colour in (("p85", "C4"), ("p50", "C3"), ("p15", "C2")):
        values = [row[0] for row in probe[p]]
        ax.plot(probe["steps"], values, color=colour)
        ax.annotate(
            f" {p[1:]}th", (probe["steps"][-1], values[-1]), color=colour, fontsize=8, va="center"
        )
    ax.set_xlim(right=probe["steps"][-1] * 1.1)


def figure(ctx: ReportContext, cells: list[Cell]) -> str:
    """Draw ioffe.png (Figure 1 a, b, c; one row per backend) and return its markdown."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = roles(ctx.suite)
    groups = by_backend(cells)
    fig, axes = plt.subplots(len(groups), 3, figsize=(15, 3.8 * len(groups)), squeeze=False)
    unit = "unit 0 of the last hidden layer, seed 0"
    for row, (name, members) in zip(axes, groups.items()):
        _accuracy_panel(row[0], members, (r["bn"], r["no_bn"]), name)
        _percentile_panel(row[1], members, r["no_bn"], f"(b) {name} without BN: {unit}")
        _percentile_panel(row[2], members, r["bn"], f"(c) {name} with BN: {unit}")
    fig.suptitle(f"{ctx.suite.name}: Figure 1 of Ioffe & Szegedy (2015), reproduced", fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.985 if len(groups) > 1 else 0.95))
    image = ctx.save_figure(fig, "ioffe.png", dpi=100)
    plt.close(fig)
    return f"![Figure 1 a, b, c]({image})"


def rows(ctx: ReportContext, cells: list[Cell]) -> list[dict[str, Any]]:
    """Per backend and variant: final accuracy, steps to target and input drift over seeds."""
    target = ctx.suite.target_acc
    out = []
    for name, members in by_backend(cells).items():
        for variant in dict.fromkeys(c["variant"] for c in members):
            mine = [c for c in members if c["variant"] == variant]
            out.append(
                {
                    "where": name,
                    "variant": variant,
                    "final_val_acc": summarize(final_acc(c) for c in mine),
                    "steps_to_target": summarize(steps_to_target(c, target) for c in mine),
                    "drift": summarize(input_drift(c) for c in mine),
                    "unavailable": sorted(
                        {(c["result"].get("probe") or {}).get("unavailable", "") for c in mine}
                        - {""}
                    ),
                }
            )
    return out


def _markdown_table(table: list[dict[str, Any]], target: float) -> str:
    body = [
        [
            row["where"],
            row["variant"],
            describe(row["final_val_acc"], ".2f", 100),
            describe(row["steps_to_target"], ".0f"),
            describe(row["drift"], ".2f") if not row["unavailable"] else "unavailable",
        ]
        for row in table
    ]
    headers = ["backend", "variant", "final val acc %", f"steps to {target:.0%}", "input drift"]
    text = tabulate(body, headers, "github", disable_numparse=True)
    notes = [f"- `{r['where']}`: {'; '.join(r['unavailable'])}" for r in table if r["unavailable"]]
    if notes:
        text += "\n\nPercentiles unavailable:\n" + "\n".join(dict.fromkeys(notes))
    return text


PAPER_CHECKPOINTS = (10_000, 20_000, 30_000, 40_000, 50_000)
"""The x-axis ticks of the paper's Figure 1(a) (50,000 steps of 60 examples)."""
PAPER = (
    "**The paper** (section 4.1, MNIST, 50,000 steps): its text gives no accuracy numbers; "
    "Figure 1(a) shows the batch-normalized network with the higher held-out accuracy throughout "
    "training, and Figures 1(b, c) a sigmoid input whose distribution (15th/50th/85th "
    "percentiles) changes markedly over training without BN and stays much more stable with it. "
    "Differences of this run from the paper: the dataset (see the header; Fashion-MNIST is "
    "harder than MNIST, so accuracies sit lower), the initialization (the paper: small random "
    "Gaussian values; here the shared canonical Glorot-uniform weights) and the learning rate "
    "(not given in the paper)."
)


def accuracy_at(cell: Cell, step: int) -> float:
    """Validation accuracy recorded at training step ``step`` (NaN when not recorded)."""
    steps, accs = _steps(cell), series(cell, "val_acc")
    hits = np.nonzero(steps == step)[0]
    return accs[int(hits[0])] if len(hits) and cell["status"] == "ok" else float("nan")


def checkpoint_table(cells: list[Cell]) -> tuple[str, list[dict[str, Any]]]:
    """Held-out accuracy at the paper's checkpoints that this run reached, per backend/variant."""
    reached = {int(s) for c in cells for s in _steps(c)}
    points = [s for s in PAPER_CHECKPOINTS if s in reached]
    if not points:
        return "", []
    body, data = [], []
    for name, members in by_backend(cells).items():
        for variant in dict.fromkeys(c["variant"] for c in members):
            mine = [c for c in members if c["variant"] == variant]
            summaries = [summarize(accuracy_at(c, s) for c in mine) for s in points]
            body.append([name, variant] + [x.text(".2f", 100) for x in summaries])
            data.append(
                {
                    "where": name,
                    "variant": variant,
                    "steps": points,
                    "val_acc": [x.__dict__ for x in summaries],
                }
            )
    headers = ["backend", "variant"] + [f"{s // 1000}k steps %" for s in points]
    table = tabulate(body, headers, "github", disable_numparse=True)
    return "Held-out accuracy at the paper's checkpoints (mean ± sd over seeds):\n\n" + table, data


def ioffe(ctx: ReportContext) -> str:
    """Figure 1 (a, b, c) reproduced per backend, and the table behind the claims."""
    cells = ctx.trained_cells()
    if not cells:
        return ""
    table = rows(ctx, cells)
    ctx.data["ioffe"] = [
        {k: (v.__dict__ if hasattr(v, "mean") else v) for k, v in row.items()} for row in table
    ]
    checkpoints, ctx.data["ioffe_checkpoints"] = checkpoint_table(cells)
    return "\n".join(
        [
            "## Ioffe & Szegedy (2015), Figure 1\n",
            figure(ctx, cells),
            "\n" + PAPER + "\n",
            checkpoints + "\n" if checkpoints else "",
            "Mean ± sd over seeds; a cell that never reaches the target counts as "
            "the budget + 1 round. *input drift*: range of the 50th percentile of a sigmoid's "
            "input over training, in units of its mean 15th–85th-percentile width, averaged "
            "over the probed units of the last hidden layer (eval mode, fixed probe batch).\n",
            _markdown_table(table, ctx.suite.target_acc),
        ]
    )
