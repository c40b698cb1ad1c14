"""The timing suite's plot: epoch time against batch size, one panel per backend."""

from __future__ import annotations

import math
from typing import Any

from harness.report.context import ReportContext
from harness.report.timing_cells import Cell, epoch_flops, loop, machine_rate, steady
from harness.roofline import roofline_seconds

STYLES = {"harness": "-", "expert": "--", "tutorial": ":"}


def _series(cells: list[Cell], kind: str, bn: bool) -> tuple[list[int], list[float], list[Any]]:
    xs, ys, errs = [], [], []
    for cell in cells:
        times = steady(loop(cell, kind, bn))
        if times.n:
            xs.append(int(cell["result"]["batch_size"]))
            ys.append(times.median)
            errs.append((times.median - times.q1, times.q3 - times.median))
    return xs, ys, errs


def _roofline(cells: list[Cell], every: list[Cell]) -> tuple[list[int], list[float]]:
    pairs = [
        (int(c["result"]["batch_size"]), roofline_seconds(epoch_flops(c), machine_rate(every, c)))
        for c in cells
    ]
    pairs = [(b, s) for b, s in pairs if math.isfinite(s)]
    return [b for b, _ in pairs], [s for _, s in pairs]


def _panel(ax: Any, cells: list[Cell], every: list[Cell], title: str) -> None:
    for kind, style in STYLES.items():
        for bn in (False, True):
            xs, ys, errs = _series(cells, kind, bn)
            if not xs:
                continue
            lower, upper = zip(*errs)
            ax.errorbar(
                xs,
                ys,
                yerr=[lower, upper],
                fmt=style,
                marker="o",
                ms=4,
                capsize=3,
                color="C1" if bn else "C0",
                label=f"{kind}, BN {'on' if bn else 'off'}",
            )
    xs, ys = _roofline(cells, every)
    if xs:
        ax.plot(xs, ys, "-.", color="0.5", label="GEMM roofline (machine best)")
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter, NullLocator

    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    batches = sorted({int(c["result"]["batch_size"]) for c in cells})
    ax.set_xticks(batches, [str(b) for b in batches])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("batch size")
    ax.set_title(title, fontsize=11)
    ax.grid(True, which="both", alpha=0.3)


def epoch_plot(ctx: ReportContext, cells: list[Cell]) -> str:
    """``timing.png``: median epoch seconds (IQR bars) of every loop against batch size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys((c["backend"], c["device"]) for c in cells))
    fig, axes = plt.subplots(1, len(names), figsize=(4.8 * len(names) + 0.5, 4.4), squeeze=False)
    for ax, (backend, device) in zip(axes[0], names):
        mine = [c for c in cells if (c["backend"], c["device"]) == (backend, device)]
        _panel(ax, mine, cells, f"{backend}/{device}")
    axes[0, 0].set_ylabel("epoch seconds (median, IQR bars)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), fontsize=8)
    samples = cells[0]["result"]["dataset"]["train"]
    fig.suptitle(f"Epoch time ({samples} training samples) against batch size", fontsize=12)
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    image = ctx.save_figure(fig, "timing.png", dpi=110)
    plt.close(fig)
    return f"### Epoch time against batch size\n\n![epoch time against batch size]({image})"
