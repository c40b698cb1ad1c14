"""The BatchNorm claims, evaluated from stored cell results: measurement, intervals, verdict.

A claim function takes the run's cells (the store's dicts) and the suite and returns one
:class:`ClaimResult` per backend/device. Per-seed measurements are summarized as mean ± sd with a
95% t-interval; a difference counts as resolved only when the two intervals do not overlap, so
the verdict is ``supported`` (resolved in the claimed direction), ``not supported`` (resolved the
other way) or ``unresolved`` (overlapping intervals, one seed, or no data). Variant names come
from ``suite.extra["roles"]`` (defaults in :data:`ROLES`); which claims a suite makes, from
``suite.extra["claims"]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.report.context import final, series
from harness.report.stats import Summary, cell_key, group, summarize

SUPPORTED, NOT_SUPPORTED, UNRESOLVED = "supported", "not supported", "unresolved"
ROLES = {"bn": "bn", "no_bn": "no-bn", "layernorm": "layernorm", "bn_after": "bn-after"}
Cell = dict[str, Any]
PerSeed = Callable[[list[Cell]], float]
Side = tuple[str, Callable[[Cell], bool]]
Show = Callable[[Summary], str]


@dataclass(frozen=True)
class ClaimResult:
    """One claim on one backend/device: what was measured, the numbers and the verdict."""

    claim: str
    where: str
    what: str
    measurement: str
    verdict: str
    numbers: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def compare(claimed: Summary, other: Summary, claimed_higher: bool) -> str:
    """Verdict for "``claimed`` is higher (or lower) than ``other``" from their 95% intervals."""
    if claimed.n == 0 or other.n == 0 or claimed.overlaps(other):
        return UNRESOLVED
    return SUPPORTED if (claimed.mean > other.mean) == claimed_higher else NOT_SUPPORTED


def describe(s: Summary, fmt: str = ".3f", scale: float = 1.0) -> str:
    """``mean ± sd [lo, hi] (n=N)``; a single value has no interval; no value prints ``-``."""
    if s.n == 0:
        return "- (n=0)"
    if s.n == 1:
        return f"{s.mean * scale:{fmt}} (n=1)"
    return (
        f"{s.mean * scale:{fmt}} ± {s.sd * scale:{fmt}} "
        f"[{s.lo * scale:{fmt}}, {s.hi * scale:{fmt}}] (n={s.n})"
    )


def by_backend(cells: list[Cell]) -> dict[str, list[Cell]]:
    """Cells per backend/device, in first-seen order."""
    return {f"{b}/{d}": m for (b, d), m in group(cells, "backend", "device").items()}


def final_acc(cell: Cell) -> float:
    """Final validation accuracy of a cell that trained to the end, else NaN."""
    return final(cell, "val_acc") if cell["status"] == "ok" else math.nan


def rounds_to_target(cell: Cell, target: float) -> float:
    """First epoch (round) whose validation accuracy reaches ``target``.

    A cell that never gets there counts as one round more than it trained (a censored value,
    so "never" still ranks behind "late"); a failed cell is NaN.
    """
    accs = series(cell, "val_acc")
    if cell["status"] not in ("ok", "diverged") or not accs:
        return math.nan
    hit = next((i for i, acc in enumerate(accs, 1) if acc >= target), None)
    return float(hit) if hit is not None else float(cell["spec"]["train"]["epochs"] + 1)


def steps_per_round(cell: Cell) -> int:
    """Optimizer steps in one epoch (or evaluation round) of a cell."""
    result = cell["result"]
    return int(result.get("steps_per_round") or result.get("steps_per_epoch") or 1)


def in_steps(cell: Cell) -> bool:
    """True when the cell's rounds are fixed numbers of steps rather than epochs."""
    return bool(cell["result"].get("round_unit") == "steps")


def batch_mode_gap(cell: Cell) -> float:
    """BN's batch-mode val acc (batches of the training size) minus its eval-mode val acc."""
    batch_mode = cell["result"].get("batch_mode_val_acc")
    if cell["status"] != "ok" or not isinstance(batch_mode, (int, float)):
        return math.nan
    return float(batch_mode) - final_acc(cell)


def train_eval_gap(cell: Cell) -> float:
    """Train-mode (batch statistics) minus eval-mode (running statistics) val accuracy."""
    train_mode = cell["result"].get("train_mode_val_acc")
    if cell["status"] != "ok" or not isinstance(train_mode, (int, float)):
        return math.nan
    return float(train_mode) - final_acc(cell)


def train_val_gap(cell: Cell) -> float:
    """Final-epoch training accuracy (train mode, over the epoch) minus validation accuracy."""
    return final(cell, "train_acc") - final_acc(cell)


def per_seed(cells: Iterable[Cell], keep: Callable[[Cell], bool], fn: PerSeed) -> Summary:
    """Summary over seeds of ``fn(that seed's cells)``, for the cells ``keep`` selects."""
    chosen = [c for c in cells if keep(c)]
    return summarize(fn(members) for members in group(chosen, "seed").values())


def versus(
    cells: list[Cell],
    claim: str,
    what: str,
    metric: PerSeed,
    sides: tuple[Side, Side],
    claimed_higher: bool,
    show: Show = describe,
) -> list[ClaimResult]:
    """Claim "side 0 has a higher (or lower) per-seed ``metric`` than side 1", per backend."""
    out = []
    for name, members in by_backend(cells).items():
        (label_a, keep_a), (label_b, keep_b) = sides
        a, b = per_seed(members, keep_a, metric), per_seed(members, keep_b, metric)
        text = f"{label_a} {show(a)} vs {label_b} {show(b)}"
        numbers = {label_a: asdict(a), label_b: asdict(b)}
        verdict = compare(a, b, claimed_higher)
        out.append(ClaimResult(claim, name, what, text, verdict, numbers))
    return out


def roles(suite: Any) -> dict[str, str]:
    """Variant names playing each role (``bn``, ``no_bn``, ...) in ``suite``."""
    return {**ROLES, **suite.extra.get("roles", {})}


def pair(suite: Any, first: str, second: str) -> tuple[Side, Side]:
    """The two sides "variant playing role ``first``" and "... ``second``" of ``suite``."""
    a, b = roles(suite)[first], roles(suite)[second]
    return (a, lambda c: c["variant"] == a), (b, lambda c: c["variant"] == b)


def mean_of(fn: Callable[[Cell], float]) -> Callable[[list[Cell]], float]:
    """Per-seed metric: the mean of ``fn`` over the seed's cells (finite values only)."""

    def metric(members: list[Cell]) -> float:
        values = [v for v in map(fn, members) if math.isfinite(v)]
        return sum(values) / len(values) if values else math.nan

    return metric


def sweep_key(suite: Any) -> str:
    """The suite's (first) sweep axis, e.g. ``train.batch_size``."""
    return next(iter(suite.sweep), "")


def steps_to_target(cell: Cell, target: float) -> float:
    """Optimizer steps until the validation accuracy first reaches ``target`` (censored)."""
    return rounds_to_target(cell, target) * steps_per_round(cell)


def bn_faster(cells: list[Cell], suite: Any) -> list[ClaimResult]:
    """BN converges faster: epochs (or, in step-based suites, steps) to the target accuracy."""
    target, stepped = suite.target_acc, any(in_steps(c) for c in cells)
    fn = steps_to_target if stepped else rounds_to_target
    unit = "steps" if stepped else "epochs"
    what = f"{unit} to {target:.0%} val acc (never reached counts as the budget + 1 round)"
    sides, show = pair(suite, "bn", "no_bn"), lambda s: describe(s, ".1f")
    metric = mean_of(lambda c: fn(c, target))
    return versus(cells, "BN converges faster", what, metric, sides, False, show)


def bn_more_accurate(cells: list[Cell], suite: Any) -> list[ClaimResult]:
    """BN reaches a higher final validation accuracy."""
    sides = pair(suite, "bn", "no_bn")
    return versus(
        cells, "BN reaches higher accuracy", "final val acc", mean_of(final_acc), sides, True
    )


def bn_regularizes(cells: list[Cell], suite: Any) -> list[ClaimResult]:
    """BN regularizes: a smaller gap between training and validation accuracy."""
    what = "final train acc (train mode, over the last epoch) − val acc"
    sides = pair(suite, "bn", "no_bn")
    return versus(cells, "BN regularizes", what, mean_of(train_val_gap), sides, False)


def placement(cells: list[Cell], suite: Any) -> list[ClaimResult]:
    """BN before the activation (the paper's placement) beats BN after it (final val acc)."""
    claim = "BN before the activation beats BN after it"
    sides = pair(suite, "bn", "bn_after")
    return versus(cells, claim, "final val acc", mean_of(final_acc), sides, True)


def _batch(size: Any, keep: Callable[[Cell], bool] = lambda c: True) -> Side:
    return f"batch {size}", lambda c: keep(c) and cell_key(c, "train.batch_size") == size


def small_batch_accuracy(cells: list[Cell], suite: Any) -> list[ClaimResult]:
    """BN suffers at small batch: below LayerNorm at the smallest batch size of the run."""
    smallest = min((cell_key(c, "train.batch_size") for c in cells), default=None)
    chosen = [c for c in cells if _batch(smallest)[1](c)]
    claim = "BN suffers at small batch (vs LayerNorm)"
    what = f"final val acc at batch {smallest}"
    return versus(chosen, claim, what, mean_of(final_acc), pair(suite, "bn", "layernorm"), False)


def small_batch_gap(cells: list[Cell], suite: Any) -> list[ClaimResult]:
    """BN's train mode (batch statistics) and eval mode disagree more at small batch."""
    (bn, is_bn), _ = pair(suite, "bn", "no_bn")
    sizes = sorted({cell_key(c, "train.batch_size") for c in cells}) or [None]
    sides = (_batch(sizes[0], is_bn), _batch(sizes[-1], is_bn))
    what = (
        f"{bn}: |val acc in train mode with batches of the training size − val acc in "
        "eval mode (running statistics)| (signed in the table above: negative = eval mode better)"
    )
    claim = "BN's train and eval modes disagree at small batch"
    metric = mean_of(lambda c: abs(batch_mode_gap(c)))
    return versus(cells, claim, what, metric, sides, True)


def stable_lrs(members: list[Cell], threshold: float) -> list[float]:
    """Learning rates whose cell finished without NaN/inf and reached ``threshold``."""
    return [
        float(cell_key(c, "train.lr"))
        for c in members
        if c["status"] == "ok" and final_acc(c) >= threshold
    ]


def describe_log(s: Summary) -> str:
    """A Summary of log10 values shown back in linear units (geometric mean and interval)."""
    if s.n == 0:
        return "none stable (n=0)"
    if s.n == 1:
        return f"{10**s.mean:.3g} (n=1)"
    return f"{10**s.mean:.3g} [{10**s.lo:.3g}, {10**s.hi:.3g}] (n={s.n}, geometric)"


def higher_lr(cells: list[Cell], suite: Any) -> list[ClaimResult]:
    """BN tolerates higher learning rates: the largest stable lr, BN vs no BN."""
    threshold = float(suite.extra.get("stable_acc", 0.8))

    def metric(members: list[Cell]) -> float:
        stable = stable_lrs(members, threshold)
        return math.log10(max(stable)) if stable else math.nan

    what = f"largest stable lr (no NaN/inf, final val acc ≥ {threshold:.0%})"
    claim = "BN tolerates higher learning rates"
    return versus(cells, claim, what, metric, pair(suite, "bn", "no_bn"), True, describe_log)


def wider_lr_range(cells: list[Cell], suite: Any) -> list[ClaimResult]:
    """BN trains usefully over more of the learning-rate grid (count of stable lrs)."""
    threshold = float(suite.extra.get("stable_acc", 0.8))
    lrs = sorted({cell_key(c, "train.lr") for c in cells}) or [math.nan]
    what = (
        f"stable lrs out of {len(lrs)} ({lrs[0]:g}..{lrs[-1]:g}, final val acc ≥ {threshold:.0%})"
    )
    claim = "BN trains well over a wider range of learning rates"
    metric = lambda m: float(len(stable_lrs(m, threshold)))  # noqa: E731
    return versus(
        cells, claim, what, metric, pair(suite, "bn", "no_bn"), True, lambda s: describe(s, ".1f")
    )


def accuracy_spread(members: list[Cell]) -> float:
    """Max − min final val acc across a seed's sweep points; a diverged cell counts as chance."""
    accs = []
    for cell in members:
        chance = 1.0 / float(cell["spec"]["model"].get("num_classes") or 10)
        accs.append(final_acc(cell) if cell["status"] == "ok" else chance)
    accs = [a for a in accs if math.isfinite(a)]
    return max(accs) - min(accs) if len(accs) > 1 else math.nan


def init_insensitive(cells: list[Cell], suite: Any) -> list[ClaimResult]:
    """BN makes training less sensitive to the init: spread of final acc across init scales."""
    scales = sorted({cell_key(c, sweep_key(suite) or "model.init_scale") for c in cells}) or [1]
    what = f"spread (max − min) of final val acc across init scales {scales[0]:g}..{scales[-1]:g}"
    claim = "BN makes training less sensitive to init"
    return versus(cells, claim, what, accuracy_spread, pair(suite, "bn", "no_bn"), False)


def input_drift(cell: Cell) -> float:
    """How far the sigmoid inputs' median moves over training, in units of their 15-85 width.

    For each probed unit: (max − min over probes of the 50th percentile) divided by the mean
    85th − 15th percentile width; averaged over the units. NaN without probe data.
    """
    probe = cell["result"].get("probe") or {}
    if cell["status"] != "ok" or not probe.get("p50"):
        return math.nan
    p15, p50, p85 = (list(zip(*probe[k])) for k in ("p15", "p50", "p85"))  # per unit
    drifts = []
    for lo, mid, hi in zip(p15, p50, p85):
        width = sum(h - w for h, w in zip(hi, lo)) / len(hi)
        drifts.append((max(mid) - min(mid)) / width if width > 0 else math.nan)
    return sum(drifts) / len(drifts)


def stable_inputs(cells: list[Cell], suite: Any) -> list[ClaimResult]:
    """BN keeps the distribution of a sigmoid's input stable over training (Figure 1 b, c)."""
    what = "drift of the sigmoid-input median over training, in 15–85th-percentile widths"
    claim = "BN stabilizes the sigmoid input distribution"
    sides = pair(suite, "bn", "no_bn")
    return versus(
        cells, claim, what, mean_of(input_drift), sides, False, lambda s: describe(s, ".2f")
    )


ClaimFn = Callable[[list[Cell], Any], list[ClaimResult]]
CLAIMS: dict[str, ClaimFn] = {
    "bn_faster": bn_faster,
    "bn_more_accurate": bn_more_accurate,
    "bn_regularizes": bn_regularizes,
    "placement": placement,
    "small_batch_accuracy": small_batch_accuracy,
    "small_batch_gap": small_batch_gap,
    "higher_lr": higher_lr,
    "wider_lr_range": wider_lr_range,
    "init_insensitive": init_insensitive,
    "stable_inputs": stable_inputs,
}


def evaluate(cells: list[Cell], suite: Any) -> list[ClaimResult]:
    """Every claim the suite names in ``extra["claims"]``, over the cells with epoch data."""
    trained = [c for c in cells if c["result"].get("epochs")]
    return [r for name in suite.extra.get("claims", ()) for r in CLAIMS[name](trained, suite)]
