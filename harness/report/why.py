"""Report sections of the research suites: what the paper found beside what was measured here,
where the setting differs, and the table behind the claims (mean over seeds per backend)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from tabulate import tabulate

from harness.cells import final, group
from harness.report.context import ReportContext
from harness.stats import summarize
from harness.why.landscape import STEP_FACTORS
from harness.why.metrics import precise_gain, probe_mean, scale_off

Cell = dict[str, Any]
Column = tuple[str, Callable[[Cell], float], str]

NOISE_PAPER = (
    "**Santurkar, Tsipras, Ilyas & Madry (2018)**, VGG on CIFAR-10 and deep linear networks: "
    'BN followed by noise that shifts and rescales every unit at every step ("noisy BN") '
    "trains about as fast and as well as BN, far better than no BN; by their gradient-change "
    "measure BN does not reduce internal covariate shift (often increases it); BN makes the "
    "loss smoother along the gradient (smaller loss variation, more predictive gradients, lower "
    "effective β-smoothness). **Here**: an MLP (ReLU, BN before the activation) on the run's "
    "dataset, trained by the core's SGD (momentum, torch semantics) over each backend's "
    "`loss_and_grads`, so the noise is the same arrays on every backend. Noise after each BN "
    "layer, per step and unit: shift ~ U(−n, n), scale ~ U(1, 1 + n), n = `train.bn_noise`. "
    "Validation accuracy in eval mode with BN statistics recomputed over training batches "
    "(the core's loop keeps no running averages), without noise. Probes every "
    "`probe_every` steps on the step's batch and noise; step sizes lr × "
    f"{', '.join(f'{f:g}' for f in STEP_FACTORS)}."
)
PRECISE_PAPER = (
    "**Wu & Johnson (2021)**, ResNets on ImageNet: the EMA of batch statistics used at "
    "inference can be a poor estimate of the population statistics (stale weights, too short "
    "or too noisy an average), most visibly with small batches or a slow EMA; recomputing the "
    'statistics over training data after training ("precise BN") recovers the accuracy. '
    "**Here**: an MLP trained by each backend's own loop with its BN layer's running average "
    "(momentum in the core convention, the weight of the new batch; Keras/Flax get 1 − m); "
    "precise statistics from up to `precise_batches` training batches of the training batch "
    "size, in training mode, mean of batch means and of unbiased batch variances."
)
BN_ONLY_PAPER = (
    "**Frankle, Schwab & Morcos (2021)**, deep ResNets on CIFAR-10/ImageNet: with every other "
    "weight frozen at its random init, training only BN's scale and offset reaches accuracy far "
    "above chance (e.g. 82% for ResNet-866 on CIFAR-10) and beats training two random weights "
    "per channel; BN learns to switch off a large fraction of features (scale near 0). "
    "**Here**: an MLP (far shallower, so far fewer BN parameters), core SGD; `random-subset` "
    "trains two random incoming weights per hidden unit (as many scalars as BN-only trains) "
    "with BN frozen at scale 1, offset 0; the output layer stays random in both."
)


def _mean(cells: list[Cell], fn: Callable[[Cell], float]) -> float:
    per_seed = {s: fn(m[0]) for s, m in group(cells, "seed").items()}
    return summarize([v for v in per_seed.values() if math.isfinite(v)]).mean


def _fmt(value: float, fmt: str) -> str:
    return "-" if not math.isfinite(value) else format(value, fmt)


def _table(ctx: ReportContext, key: str, keys: list[str], columns: list[Column]) -> str:
    rows = []
    cells = ctx.trained_cells()
    for where, members in group(cells, "backend", "device", *keys).items():
        row: dict[str, Any] = {"backend": f"{where[0]}/{where[1]}"}
        row.update({k.split(".")[-1]: v for k, v in zip(keys, where[2:])})
        for label, fn, fmt in columns:
            row[label] = _fmt(_mean(members, fn), fmt)
        rows.append(row)
    ctx.data[key] = rows
    return tabulate(rows, headers="keys", tablefmt="github") if rows else "(no finished cells)"


def _acc(cell: Cell) -> float:
    return 100 * final(cell, "val_acc") if cell["status"] == "ok" else math.nan


def noise_injection(ctx: ReportContext) -> str:
    """Santurkar et al. 2018 beside this run: accuracy, ICS and the landscape per variant."""
    columns: list[Column] = [
        ("val acc (%)", _acc, ".2f"),
        ("train acc (%)", lambda c: 100 * final(c, "train_acc"), ".2f"),
        ("ICS ‖G−G'‖", lambda c: probe_mean(c, "ics_l2"), ".4f"),
        ("ICS cos", lambda c: probe_mean(c, "ics_cos"), ".3f"),
        ("loss variation", lambda c: probe_mean(c, "loss_variation"), ".4f"),
        ("grad change", lambda c: probe_mean(c, "grad_change"), ".4f"),
        ("β-smoothness", lambda c: probe_mean(c, "beta_smoothness"), ".3f"),
    ]
    table = _table(ctx, "noise_injection", ["variant"], columns)
    return "\n".join(["## Noise injection: paper and here\n", NOISE_PAPER + "\n", table, ""])


def precise_bn(ctx: ReportContext) -> str:
    """Wu & Johnson 2021 beside this run: running vs precise statistics per batch and momentum."""
    columns: list[Column] = [
        ("running (%)", lambda c: 100 * c["result"].get("running_val_acc", math.nan), ".2f"),
        ("precise (%)", lambda c: 100 * c["result"].get("precise_val_acc", math.nan), ".2f"),
        ("gain (pp)", lambda c: 100 * precise_gain(c), "+.2f"),
        ("mean gap (sd)", lambda c: c["result"].get("stat_gap", math.nan), ".3f"),
    ]
    keys = ["train.batch_size", "model.bn_momentum"]
    table = _table(ctx, "precise_bn", keys, columns)
    note = (
        "*mean gap*: mean over BN units of |running mean − precise mean| in units of the precise "
        "standard deviation."
    )
    return "\n".join(["## Precise BN: paper and here\n", PRECISE_PAPER + "\n", table, "", note])


def bn_only(ctx: ReportContext) -> str:
    """Frankle et al. 2021 beside this run: accuracy per trainable set, units switched off."""
    columns: list[Column] = [
        ("val acc (%)", _acc, ".2f"),
        ("trained params", lambda c: float(c["result"].get("trained_params", math.nan)), ".0f"),
        ("off: scale<0.01 (%)", lambda c: 100 * scale_off(c, "0.01"), ".1f"),
        ("off: scale<0.05 (%)", lambda c: 100 * scale_off(c, "0.05"), ".1f"),
        ("off: scale<0.1 (%)", lambda c: 100 * scale_off(c, "0.1"), ".1f"),
    ]
    table = _table(ctx, "bn_only", ["variant"], columns)
    note = (
        "Units switched off: the share of BN units whose |scale| ends below the threshold "
        "(headline threshold 0.05, 5% of the initial scale 1)."
    )
    return "\n".join(
        ["## Training only BN: paper and here\n", BN_ONLY_PAPER + "\n", table, "", note]
    )
