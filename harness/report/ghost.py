"""Report section of the ``ghost-bn`` suite: what the papers found beside what was measured.

The measured side is read from the run's cells: per backend, the ghost batch size with the best
mean final validation accuracy, and the accuracy at the pre-declared pick and at both extremes
(the claims test the pick, never the best, which is chosen after seeing the data).
"""

from __future__ import annotations

import math
from typing import Any

from tabulate import tabulate

from harness.cells import group
from harness.claims import by_backend, final_acc
from harness.report.context import ReportContext
from harness.stats import summarize

Cell = dict[str, Any]
KEY = "model.ghost_batch"
PAPER = (
    "**Hoffer, Hubara & Soudry (2017)**, ResNet-44 and others on CIFAR-10/100 and ImageNet at "
    "batch 4096 and more: *ghost batch normalization* (statistics over virtual batches of 128 "
    "inside the large batch, with more epochs and a scaled learning rate) closes much of the "
    "generalization gap of large-batch training. **Summers & Dinneen (2020)**, ResNets on "
    "CIFAR and Caltech-256: the ghost batch size is a regularization knob; an intermediate size "
    "(e.g. 16-32 of a batch of 128-512) is best, the full batch and very small virtual batches "
    "(2-4) both worse. **Here**: an MLP 784-512-256-10 (ReLU, BN before the activation), not "
    "a convolutional ResNet; a small dataset; the same epochs and learning rate for every g "
    "(no retuning); running statistics by the rule of `harness.numerics.ghost` (mean of the "
    "virtual batches' means and unbiased variances, the core's momentum) on every backend, "
    "checked against a float64 reference by `harness check` (`norm-apply[ghost-*]`). The claim "
    "tests a ghost batch size fixed before the run (`extra.ghost_pick`); the best g below is "
    "picked after seeing the data and is shown for reading, not tested."
)


def _mean_acc(cells: list[Cell]) -> float:
    per_seed = [final_acc(c) for c in cells]
    return summarize([a for a in per_seed if math.isfinite(a)]).mean


def _row(name: str, members: list[Cell], pick: Any) -> list[str]:
    by_g = {g[0]: _mean_acc(m) for g, m in group(members, KEY).items()}
    finite = {g: a for g, a in by_g.items() if math.isfinite(a)}
    if not finite:
        return [name, "-", "-", "-", "-"]
    best = max(finite, key=lambda g: finite[g])
    lo, hi = min(by_g), max(by_g)

    def pct(g: Any) -> str:
        a = by_g.get(g, math.nan)
        return f"{a * 100:.2f} (g={g})" if math.isfinite(a) else "-"

    return [name, pct(best), pct(pick), pct(hi), pct(lo)]


def paper(ctx: ReportContext) -> str:
    """What the papers found, where this setting differs, and per backend the best g measured."""
    cells = [c for c in ctx.trained_cells() if c["status"] == "ok"]
    pick = ctx.suite.extra.get("ghost_pick")
    rows = [_row(name, members, pick) for name, members in by_backend(cells).items()]
    headers = ["backend", "best g (after the fact)", "pre-declared g", "largest g", "smallest g"]
    table = tabulate(rows, headers, "github", disable_numparse=True) if rows else ""
    intro = "Mean final validation accuracy (%) over seeds, per backend."
    return "\n\n".join(p for p in ("## What the papers found", PAPER, intro, table) if p)
