"""The timing suite's plot: epoch time against batch size, one panel per backend.

The shared palette (:mod:`harness.report.style`): each panel draws in its backend's colour, BN
on and off in the line styles of the ``bn`` and ``no-bn`` variants of every other report; the
loop (harness, expert, tutorial) is told by its marker.
"""

from __future__ import annotations

import math
from typing import Any

from harness.report.context import ReportContext
from harness.report.style import backend_colour, variant_style
from harness.report.timing_cells import Cell, epoch_flops, loop, machine_rate, steady
from harness.roofline import roofline_seconds

MARKERS = {"harness": "o", "expert": "s", "tutorial": "^"}


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


def _panel(ax: Any, cells: list[Cell], every: list[Cell], backend: str, title: str) -> None:
    colour = backend_colour(backend)
    for kind, marker in MARKERS.items():
        for bn in (False, True):
            xs, ys, errs = _series(cells, kind, bn)
            if not xs:
                continue
            lower, upper = zip(*errs)
            ax.errorbar(
                xs,
                ys,
                yerr=[lower, upper],
                ls=variant_style("bn" if bn else "no-bn"),
                marker=marker,
                ms=4,
                capsize=3,
                color=colour,
                mfc=colour if bn else "white",
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


def _legend(ax: Any) -> tuple[list[Any], list[str]]:
    """The first panel's legend entries drawn in black: colour means the backend, named by
    each panel's title, so the shared legend shows only marker and line style."""
    from matplotlib.lines import Line2D

    handles, labels = ax.get_legend_handles_labels()
    out = []
    for handle in handles:
        line = handle.lines[0] if hasattr(handle, "lines") else handle  # an errorbar's line
        filled = line.get_markerfacecolor() != "white"
        out.append(
            Line2D(
                [],
                [],
                color="0.2",
                ls=line.get_linestyle(),
                marker=line.get_marker(),
                ms=4,
                mfc="0.2" if filled else "white",
            )
        )
    return out, labels


def epoch_plot(ctx: ReportContext, cells: list[Cell]) -> str:
    """``timing.png``: median epoch seconds (IQR bars) of every loop against batch size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys((c["backend"], c["device"]) for c in cells))
    fig, axes = plt.subplots(1, len(names), figsize=(4.8 * len(names) + 0.5, 4.4), squeeze=False)
    for ax, (backend, device) in zip(axes[0], names):
        mine = [c for c in cells if (c["backend"], c["device"]) == (backend, device)]
        _panel(ax, mine, cells, backend, f"{backend}/{device}")
    axes[0, 0].set_ylabel("epoch seconds (median, IQR bars)")
    handles, labels = _legend(axes[0, 0])
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), fontsize=8)
    samples = cells[0]["result"]["dataset"]["train"]
    fig.suptitle(f"Epoch time ({samples} training samples) against batch size", fontsize=12)
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    image = ctx.save_figure(fig, "timing.png", dpi=110)
    plt.close(fig)
    return f"### Epoch time against batch size\n\n![epoch time against batch size]({image})"
