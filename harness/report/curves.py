"""Learning-curve plots and the cross-framework agreement section."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from tabulate import tabulate

from harness.report.attribution import running_var_note
from harness.report.context import ReportContext, series
from harness.report.stats import group
from harness.report.style import backend_colour, variant_style

ACC_TOL = 0.01  # curves "separate" when validation accuracy differs by more than 1 point
LOSS_TOL = 0.05  # ... or validation loss by more than 5% relative
METRICS = (  # (key, panel title, axis label, scale): row 0 losses, row 1 accuracies in %
    ("train_loss", "training loss", "cross-entropy loss", 1.0),
    ("val_loss", "validation loss", "cross-entropy loss", 1.0),
    ("train_acc", "training accuracy", "accuracy (%)", 100.0),
    ("val_acc", "validation accuracy", "accuracy (%)", 100.0),
)
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def band(cells: list[dict[str, Any]], key: str, scale: float = 1.0) -> tuple[np.ndarray, ...]:
    """Per epoch: mean over the cells (seeds) and its 95% t-interval (NaN band for one seed)."""
    from scipy import stats

    curves = [series(c, key) for c in cells]
    length = max((len(c) for c in curves), default=0)
    values = np.full((len(curves), length), np.nan)
    for i, curve in enumerate(curves):
        values[i, : len(curve)] = curve
    values *= scale
    n = np.sum(np.isfinite(values), axis=0)
    with warnings.catch_warnings():  # an epoch no cell reached (all diverged early) stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(values, axis=0)
        sd = np.nanstd(values, axis=0, ddof=1)
    half = stats.t.ppf(0.975, np.maximum(n - 1, 1)) * sd / np.sqrt(np.maximum(n, 1))
    half = np.where(n > 1, half, np.nan)
    return mean, mean - half, mean + half


def _draw(ax: Any, groups: dict[tuple[Any, ...], list[dict[str, Any]]], metric: tuple) -> None:
    from matplotlib.ticker import MaxNLocator

    key, title, label, scale = metric
    points = list(dict.fromkeys(p for _, p, _, _ in groups))
    longest = 1
    for (variant, point, backend, device), members in groups.items():
        mean, lo, hi = band(members, key, scale)
        longest = max(longest, len(mean))
        x = np.arange(1, len(mean) + 1)
        colour = backend_colour(backend)
        name = f"{backend}/{device} · {variant}{' ' + point if point else ''}"
        marker = MARKERS[points.index(point) % len(MARKERS)] if len(points) > 1 else "o"
        ax.plot(x, mean, color=colour, ls=variant_style(variant), marker=marker, ms=3, label=name)
        if np.isfinite(lo).any():
            ax.fill_between(x, lo, hi, color=colour, alpha=0.1, lw=0)
    ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.set_ylabel(label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(0.5, longest + 0.5)  # one epoch still gets an integer tick of its own
    ax.grid(alpha=0.3)


def curves(ctx: ReportContext) -> str:
    """Train/val loss and accuracy per epoch: colour = backend, line style = variant.

    Lines are the mean over seeds, bands its 95% t-interval; the two loss panels share their
    y axis, and so do the two accuracy panels.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = ctx.trained_cells()
    if not cells:
        return ""
    groups = group(cells, "variant", "point", "backend", "device")
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), sharey="row")
    for ax, metric in zip(axes.flat, METRICS):
        _draw(ax, groups, metric)
    for ax in axes[:, 1]:
        ax.yaxis.set_tick_params(labelleft=True)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), fontsize=8)
    n = _seeds(cells)
    fig.suptitle(f"{ctx.suite.name}: mean over {n} seed(s)" + (", 95% band" if n > 1 else ""))
    rows = -(-len(labels) // 4)
    fig.tight_layout(rect=(0, min(0.01 + 0.025 * rows, 0.3), 1, 1))
    name = ctx.save_figure(fig, "curves.png", dpi=110)
    plt.close(fig)
    return f"## Learning curves\n\n![learning curves]({name})"


def _seeds(cells: list[dict[str, Any]]) -> int:
    return len({c["spec"]["train"]["seed"] for c in cells})


def _pair_gaps(cells: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Largest per-epoch gaps between backends over seeds, and the first separating epoch."""
    by_seed = group(cells, "seed")
    acc_gap: list[float] = []
    loss_gap: list[float] = []
    for members in by_seed.values():
        if len({c["backend"] for c in members}) < 2:
            continue
        accs = np.array([series(c, "val_acc") for c in members], dtype=float)
        losses = np.array([series(c, "val_loss") for c in members], dtype=float)
        if accs.ndim != 2:
            continue
        acc = np.nanmax(accs, 0) - np.nanmin(accs, 0)
        loss = (np.nanmax(losses, 0) - np.nanmin(losses, 0)) / np.nanmean(np.abs(losses), 0)
        acc_gap = list(np.fmax(acc_gap, acc)) if acc_gap else list(acc)
        loss_gap = list(np.fmax(loss_gap, loss)) if loss_gap else list(loss)
    if not acc_gap:
        return None
    separate = [
        i + 1 for i, (a, lo) in enumerate(zip(acc_gap, loss_gap)) if a > ACC_TOL or lo > LOSS_TOL
    ]
    return {
        "max_val_acc_gap": float(np.nanmax(acc_gap)),
        "final_val_acc_gap": float(acc_gap[-1]),
        "max_val_loss_rel_gap": float(np.nanmax(loss_gap)),
        "first_separating_epoch": separate[0] if separate else None,
        "val_acc_gap_per_epoch": [float(a) for a in acc_gap],
    }


def agreement(ctx: ReportContext) -> str:
    """Per variant: how far apart the backends end up from identical starts."""
    cells = [c for c in ctx.ok_cells()]
    if len({c["backend"] for c in cells}) < 2:
        return ""
    rows, data = [], {}
    for (variant, point, device), members in group(cells, "variant", "point", "device").items():
        gaps = _pair_gaps(members)
        if gaps is None:
            continue
        name = f"{variant}{' ' + point if point else ''} ({device})"
        data[name] = gaps
        first = gaps["first_separating_epoch"]
        rows.append(
            [
                name,
                ", ".join(sorted({c["backend"] for c in members})),
                f"{gaps['max_val_acc_gap'] * 100:.2f}",
                f"{gaps['final_val_acc_gap'] * 100:.2f}",
                f"{gaps['max_val_loss_rel_gap'] * 100:.2f}",
                "never" if first is None else str(first),
            ]
        )
    ctx.data["agreement"] = data
    digests = {
        c["result"].get("init_digest") for c in cells if c["spec"]["model"]["init"] == "canonical"
    }
    starts = _start_note(cells, digests) + running_var_note(cells)
    headers = [
        "variant",
        "backends",
        "max Δ val acc (pp)",
        "final Δ val acc (pp)",
        "max Δ val loss (% rel)",
        "first epoch apart",
    ]
    return (
        "## Cross-framework agreement\n\n" + starts + "Per epoch, the largest difference "
        "between backends (max - min, over seeds with the same seed compared); curves count as "
        f"apart once validation accuracy differs by more than {ACC_TOL * 100:.0f} pp or "
        f"validation loss by more than {LOSS_TOL:.0%}.\n\n"
        + tabulate(rows, headers, tablefmt="github", disable_numparse=True)
    )


def _start_note(cells: list[dict[str, Any]], digests: set[Any]) -> str:
    native = any(c["spec"]["model"]["init"] == "native" for c in cells)
    if native:
        return (
            "Init mode `native`: each framework draws its own default initial weights, as "
            "the notebooks do, so differences include the initialization.\n\n"
        )
    per_seed = group(cells, "seed", "variant")
    same = all(len({c["result"].get("init_digest") for c in m}) == 1 for m in per_seed.values())
    verdict = "identical" if same else "NOT identical"
    return (
        f"Starting weights read back from every backend: {verdict} per seed and variant "
        f"(SHA-256 of the canonical arrays). Batches: the same order for every backend.\n\n"
    )


def is_nan(value: Any) -> bool:
    """True for NaN floats."""
    return isinstance(value, float) and math.isnan(value)
