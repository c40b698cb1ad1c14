"""Learning-curve plots and the cross-framework agreement section."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from tabulate import tabulate

from harness.report.context import ReportContext, series
from harness.report.stats import group

ACC_TOL = 0.01  # curves "separate" when validation accuracy differs by more than 1 point
LOSS_TOL = 0.05  # ... or validation loss by more than 5% relative
METRICS = (
    ("train_loss", "train loss"),
    ("val_loss", "validation loss"),
    ("train_acc", "train accuracy"),
    ("val_acc", "validation accuracy"),
)
STYLES = ("-", "--", ":", "-.")


def _mean_curve(cells: list[dict[str, Any]], key: str) -> np.ndarray:
    curves = [series(c, key) for c in cells]
    length = max((len(c) for c in curves), default=0)
    padded = np.full((len(curves), length), np.nan)
    for i, curve in enumerate(curves):
        padded[i, : len(curve)] = curve
    if not len(curves):
        return padded[0:0]
    with warnings.catch_warnings():  # an epoch no cell reached (all diverged early) stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.asarray(np.nanmean(padded, axis=0))


def curves(ctx: ReportContext) -> str:
    """Train/val loss and accuracy per epoch: colour = variant, line style = backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    cells = ctx.trained_cells()
    if not cells:
        return ""
    groups = group(cells, "variant", "point", "backend", "device")
    variants = list(dict.fromkeys((v, p) for v, p, _, _ in groups))
    backends = list(dict.fromkeys((b, d) for _, _, b, d in groups))
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    for ax, (key, title) in zip(axes.flat, METRICS):
        for (variant, point, backend, device), members in groups.items():
            y = _mean_curve(members, key)
            colour = f"C{variants.index((variant, point)) % 10}"
            style = STYLES[backends.index((backend, device)) % len(STYLES)]
            label = f"{variant}{' ' + point if point else ''} · {backend}/{device}"
            ax.plot(np.arange(1, len(y) + 1), y, style, color=colour, marker="o", ms=3, label=label)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"{ctx.suite.name}: mean over seeds (n={_seeds(cells)})")
    fig.tight_layout()
    fig.savefig(ctx.plot_path("curves.png"), dpi=110)
    plt.close(fig)
    return "## Learning curves\n\n![learning curves](curves.png)"


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
    starts = _start_note(cells, digests)
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
