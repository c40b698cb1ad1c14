"""The BatchNorm claims, evaluated from stored cell results: measurement, difference, verdict.

A claim function takes the run's cells (the store's dicts) and the suite and returns one
:class:`ClaimResult` per backend/device. Each claim compares two arms (BN vs no BN, ...) through
a per-seed metric; the verdict comes from the 95% interval of the *difference* of the arms
(:func:`harness.stats.difference`): paired by seed when a seed fixes both arms' initial weights
and batch order, Welch's otherwise, a bootstrap for counts. ``supported`` when the interval
excludes 0 in the claimed direction, ``contradicted`` when it excludes 0 the other way,
``unresolved`` otherwise (and with fewer than 2 seeds). Variant names come from
``suite.extra["roles"]`` (defaults in :data:`ROLES`); which claims a suite makes, from
``suite.extra["claims"]``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.cells import Cell, cell_key, final, group, series
from harness.plugins import get_plugins
from harness.registry import load_object
from harness.stats import Difference, Summary, difference, holm, summarize, t_quantile
from harness.why.metrics import chance, precise_gain, probe_mean

SUPPORTED, CONTRADICTED, UNRESOLVED = "supported", "contradicted", "unresolved"
NOT_SUPPORTED = CONTRADICTED  # the earlier name of the verdict
ROLES = {"bn": "bn", "no_bn": "no-bn", "layernorm": "layernorm", "bn_after": "bn-after"}
PerSeed = Callable[[list[Cell]], float]
Side = tuple[str, Callable[[Cell], bool]]
Show = Callable[[Summary], str]


@dataclass(frozen=True)
class Scale:
    """How a claim's metric is shown: multiplied by ``factor``, in ``unit``, with ``fmt``."""

    factor: float = 1.0
    unit: str = ""
    fmt: str = ".3f"
    counts: bool = False
    """Counts or censored ranks: the difference gets a bootstrap interval, never a t-interval."""

    def num(self, value: float, signed: bool = False) -> str:
        """``value`` in this unit (``-`` for NaN, ``±inf`` spelled out)."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        if math.isinf(value):
            return "−∞" if value < 0 else "+∞"
        text = f"{value * self.factor:{'+' if signed else ''}{self.fmt}}"
        return text.replace("-", "−")


PP = Scale(100.0, "pp", ".2f")
"""Accuracy in percent; differences of accuracies in percentage points."""


@dataclass(frozen=True)
class ClaimResult:
    """One claim on one backend/device: what was measured, the difference and the verdict.

    ``diff`` is :meth:`harness.stats.Difference.to_dict` of side 0 minus side 1 (in the metric's
    own units; ``unit``/``factor`` say how it is shown). ``verdict`` is ``own_verdict`` (from this
    backend's interval) unless the backends agree within noise and their own verdicts split,
    when every backend gets the verdict of the pooled per-seed difference (``pooled``).
    """

    claim: str
    where: str
    what: str
    measurement: str
    verdict: str
    numbers: dict[str, Any] = field(default_factory=dict)
    diff: dict[str, Any] = field(default_factory=dict)
    unit: str = ""
    factor: float = 1.0
    own_verdict: str = ""
    pooled: dict[str, Any] = field(default_factory=dict)
    p_holm: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def verdict_of(d: Difference, claimed_higher: bool) -> str:
    """Verdict for "side 0 is higher (or lower) than side 1" from the interval of a − b."""
    if not d.resolved:
        return UNRESOLVED
    return SUPPORTED if (d.lo > 0) == claimed_higher else CONTRADICTED


def compare(claimed: Summary, other: Summary, claimed_higher: bool) -> str:
    """Verdict from two arms' summaries alone (Welch's interval rebuilt from mean, sd and n)."""
    if claimed.n < 2 or other.n < 2:
        return UNRESOLVED

    va, vb = claimed.sd**2 / claimed.n, other.sd**2 / other.n
    diff = claimed.mean - other.mean
    if va + vb == 0:
        lo = hi = diff
    else:
        df = (va + vb) ** 2 / (va**2 / (claimed.n - 1) + vb**2 / (other.n - 1))
        half = t_quantile(df) * math.sqrt(va + vb)
        lo, hi = diff - half, diff + half
    return verdict_of(Difference(diff, lo, hi, claimed.n, other.n, "welch"), claimed_higher)


def describe(s: Summary, fmt: str = ".3f", scale: float = 1.0) -> str:
    """``mean ± sd (n=N)``; a single value has no sd; no value prints ``-``."""
    if s.n == 0:
        return "- (n=0)"
    if s.n == 1:
        return f"{s.mean * scale:{fmt}} (n=1)"
    return f"{s.mean * scale:{fmt}} ± {s.sd * scale:{fmt}} (n={s.n})"


def describe_diff(d: Difference, scale: Scale) -> str:
    """``Δ +2.10 pp [+1.50, +2.70] (paired-t, effect d_z 3.2)``, and the seeds a tie would need."""
    unit = f" {scale.unit}" if scale.unit else ""
    if not math.isfinite(d.diff):
        return "Δ - (no data)"
    text = f"Δ {scale.num(d.diff, True)}{unit} [{scale.num(d.lo, True)}, {scale.num(d.hi, True)}]"
    name = "d_z" if d.method.startswith("paired") else "d"
    effect = f", {name} {d.effect:.2f}".replace("-", "−") if math.isfinite(d.effect) else ""
    text += f" ({d.method}{effect})"
    if not d.resolved:
        if d.n_a < 2 or d.n_b < 2:
            text += "; needs 2+ seeds"
        elif d.seeds_needed:
            text += f"; ~{d.seeds_needed} seeds would resolve it at 80% power"
    return text


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


def seed_values(
    cells: Iterable[Cell], keep: Callable[[Cell], bool], fn: PerSeed
) -> dict[Any, float]:
    """Per seed, ``fn(that seed's cells)`` over the cells ``keep`` selects."""
    chosen = [c for c in cells if keep(c)]
    return {seed[0]: fn(members) for seed, members in group(chosen, "seed").items()}


def per_seed(cells: Iterable[Cell], keep: Callable[[Cell], bool], fn: PerSeed) -> Summary:
    """Summary over seeds of ``fn(that seed's cells)``, for the cells ``keep`` selects."""
    return summarize(seed_values(cells, keep, fn).values())


def _arms(
    a: dict[Any, float], b: dict[Any, float], paired: bool
) -> tuple[list[float], list[float]]:
    if paired:
        seeds = [s for s in a if s in b]
        return [a[s] for s in seeds], [b[s] for s in seeds]
    return list(a.values()), list(b.values())


def versus(
    cells: list[Cell],
    claim: str,
    what: str,
    metric: PerSeed,
    sides: tuple[Side, Side],
    claimed_higher: bool,
    scale: Scale = Scale(),
    paired: bool = True,
    show: Show | None = None,
) -> list[ClaimResult]:
    """Claim "side 0 has a higher (or lower) per-seed ``metric`` than side 1", per backend.

    ``paired``: the two sides share seeds, and a seed fixes both sides' initial weights and batch
    order, so the verdict uses the interval of the per-seed differences; else Welch's interval.
    Backends whose per-seed differences agree within the seed-to-seed noise but whose own
    verdicts split get the verdict of the pooled difference (see :func:`reconcile`).
    """
    out, per_backend = [], {}
    (label_a, keep_a), (label_b, keep_b) = sides
    for name, members in by_backend(cells).items():
        va, vb = seed_values(members, keep_a, metric), seed_values(members, keep_b, metric)
        sa, sb = summarize(va.values()), summarize(vb.values())
        xa, xb = _arms(va, vb, paired)
        d = difference(xa, xb, paired=paired, counts=scale.counts)
        per_backend[name] = (va, vb)
        arm = show or (lambda s: describe(s, scale.fmt, scale.factor))
        text = f"{label_a} {arm(sa)} vs {label_b} {arm(sb)}; {describe_diff(d, scale)}"
        numbers = {label_a: asdict(sa), label_b: asdict(sb)}
        verdict = verdict_of(d, claimed_higher)
        out.append(
            ClaimResult(
                claim,
                name,
                what,
                text,
                verdict,
                numbers,
                d.to_dict(),
                scale.unit,
                scale.factor,
                verdict,
            )
        )
    return reconcile(out, per_backend, claimed_higher, scale, paired)


def _device(where: str) -> str:
    return where.rsplit("/", 1)[-1]


def agree_within_noise(a: list[float], b: list[float], scale: Scale) -> bool:
    """Two backends' per-seed differences agree within noise: Welch's interval of their means
    (seed-to-seed spread as the noise, pairing ignored on purpose) contains 0."""
    d = difference(a, b, paired=False, counts=scale.counts)
    return math.isfinite(d.diff) and not d.resolved and d.n_a >= 2 and d.n_b >= 2


def reconcile(
    results: list[ClaimResult],
    per_backend: dict[str, tuple[dict[Any, float], dict[Any, float]]],
    claimed_higher: bool,
    scale: Scale,
    paired: bool,
) -> list[ClaimResult]:
    """One verdict for backends (on one device) that agree within noise but split verdicts.

    Every backend measures the same seeds (same weights, same batches), so its per-seed
    values are repeated measurements of the same experimental units. When every pair of
    backends on a device agrees within noise (:func:`agree_within_noise`, on the differences
    of same-numbered seeds) and their own verdicts differ, the verdict of all of them comes from
    the per-seed mean over backends (n = seeds, so no seed is counted twice): of the per-seed
    differences when paired, of each arm's values when not (then Welch's interval between the
    arms). Each keeps its own interval and ``own_verdict``.
    """
    out = list(results)
    for device in dict.fromkeys(_device(r.where) for r in results):
        idx = [i for i, r in enumerate(results) if _device(r.where) == device]
        if len(idx) < 2 or len({results[i].own_verdict for i in idx}) < 2:
            continue
        diffs = {}
        for i in idx:
            va, vb = per_backend[results[i].where]
            diffs[results[i].where] = {s: va[s] - vb[s] for s in va if s in vb}
        if not all(diffs.values()):
            continue
        names = list(diffs)
        agree = all(
            agree_within_noise(list(diffs[x].values()), list(diffs[y].values()), scale)
            for n, x in enumerate(names)
            for y in names[n + 1 :]
        )
        if not agree:
            continue
        seeds = sorted(set.intersection(*(set(d) for d in diffs.values())), key=str)
        seeds = [s for s in seeds if all(math.isfinite(diffs[w][s]) for w in names)]
        if paired:
            per_seed_mean = [sum(diffs[w][s] for w in names) / len(names) for s in seeds]
            pooled = difference(
                per_seed_mean, [0.0] * len(per_seed_mean), paired=True, counts=scale.counts
            )
        else:  # each arm's per-seed mean over backends, then Welch's interval between the arms
            arm_a, arm_b = (
                [sum(per_backend[w][k][s] for w in names) / len(names) for s in seeds]
                for k in (0, 1)
            )
            pooled = difference(arm_a, arm_b, paired=False, counts=scale.counts)
        verdict = verdict_of(pooled, claimed_higher)
        info = {**pooled.to_dict(), "backends": names, "text": describe_diff(pooled, scale)}
        for i in idx:
            r = results[i]
            out[i] = ClaimResult(
                r.claim,
                r.where,
                r.what,
                r.measurement,
                verdict,
                r.numbers,
                r.diff,
                r.unit,
                r.factor,
                r.own_verdict,
                info,
            )
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
    metric = mean_of(lambda c: fn(c, target))
    scale = Scale(1.0, unit, ".1f" if not stepped else ".0f", counts=True)
    return versus(
        cells, "BN converges faster", what, metric, pair(suite, "bn", "no_bn"), False, scale
    )


def bn_more_accurate(cells: list[Cell], suite: Any) -> list[ClaimResult]:
    """BN reaches a higher final validation accuracy."""
    sides = pair(suite, "bn", "no_bn")
    what = "final val acc (%)"
    return versus(cells, "BN reaches higher accuracy", what, mean_of(final_acc), sides, True, PP)


def bn_regularizes(cells: list[Cell], suite: Any) -> list[ClaimResult]:
    """BN regularizes: a smaller gap between training and validation accuracy."""
    what = "final train acc (train mode, over the last epoch) − val acc (pp)"
    sides = pair(suite, "bn", "no_bn")
    return versus(cells, "BN regularizes", what, mean_of(train_val_gap), sides, False, PP)


def placement(cells: list[Cell], suite: Any) -> list[ClaimResult]:
    """BN before the activation (the paper's placement) beats BN after it (final val acc)."""
    claim = "BN before the activation beats BN after it"
    sides = pair(suite, "bn", "bn_after")
    return versus(cells, claim, "final val acc (%)", mean_of(final_acc), sides, True, PP)


def _batch(size: Any, keep: Callable[[Cell], bool] = lambda c: True) -> Side:
    return f"batch {size}", lambda c: keep(c) and cell_key(c, "train.batch_size") == size


def small_batch_accuracy(cells: list[Cell], suite: Any) -> list[ClaimResult]:
    """BN suffers at small batch: below LayerNorm at the smallest batch size of the run."""
    smallest = min((cell_key(c, "train.batch_size") for c in cells), default=None)
    chosen = [c for c in cells if _batch(smallest)[1](c)]
    claim = "BN suffers at small batch (vs LayerNorm)"
    what = f"final val acc at batch {smallest} (%)"
    sides = pair(suite, "bn", "layernorm")
    return versus(chosen, claim, what, mean_of(final_acc), sides, False, PP)


def small_batch_gap(cells: list[Cell], suite: Any) -> list[ClaimResult]:
    """BN's train mode (batch statistics) and eval mode disagree more at small batch."""
    (bn, is_bn), _ = pair(suite, "bn", "no_bn")
    sizes = sorted({cell_key(c, "train.batch_size") for c in cells}) or [None]
    sides = (_batch(sizes[0], is_bn), _batch(sizes[-1], is_bn))
    what = (
        f"{bn}: |val acc in train mode with batches of the training size − val acc in "
        "eval mode (running statistics)| in pp (signed in the table above: negative = eval mode "
        "better)"
    )
    claim = "BN's train and eval modes disagree at small batch"
    metric = mean_of(lambda c: abs(batch_mode_gap(c)))
    # Different batch sizes draw different batch orders: the arms are not paired.
    return versus(cells, claim, what, metric, sides, True, PP, paired=False)


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

    what = (
        f"largest stable lr (no NaN/inf, final val acc ≥ {threshold:.0%}); the difference in "
        "decades (log10 units)"
    )
    claim = "BN tolerates higher learning rates"
    scale = Scale(1.0, "decades", ".2f", counts=True)  # grid points: a bootstrap interval
    sides = pair(suite, "bn", "no_bn")
    return versus(cells, claim, what, metric, sides, True, scale, show=describe_log)


def wider_lr_range(cells: list[Cell], suite: Any) -> list[ClaimResult]:
    """BN trains usefully over more of the learning-rate grid (count of stable lrs)."""
    threshold = float(suite.extra.get("stable_acc", 0.8))
    lrs = sorted({cell_key(c, "train.lr") for c in cells}) or [math.nan]
    what = (
        f"stable lrs out of {len(lrs)} ({lrs[0]:g}..{lrs[-1]:g}, final val acc ≥ {threshold:.0%})"
    )
    claim = "BN trains well over a wider range of learning rates"
    metric = lambda m: float(len(stable_lrs(m, threshold)))  # noqa: E731
    scale = Scale(1.0, "lrs", ".1f", counts=True)
    return versus(cells, claim, what, metric, pair(suite, "bn", "no_bn"), True, scale)


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
    what = (
        f"spread (max − min) of final val acc across init scales {scales[0]:g}..{scales[-1]:g} (pp)"
    )
    claim = "BN makes training less sensitive to init"
    return versus(cells, claim, what, accuracy_spread, pair(suite, "bn", "no_bn"), False, PP)


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
    scale = Scale(1.0, "widths", ".2f")
    return versus(cells, claim, what, mean_of(input_drift), sides, False, scale)


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


def claim_fn(name: str) -> ClaimFn:
    """The function of claim ``name``, looked up in the registry (a plugin's claims included;
    an unknown name is a one-line error naming the registered ones)."""
    fn: ClaimFn = load_object(get_plugins().claims.get(name).function)
    return fn


def evaluate(cells: list[Cell], suite: Any) -> list[ClaimResult]:
    """Every claim the suite names in ``extra["claims"]`` (looked up in the registry), over the
    cells with epoch data.

    Each result's ``p_holm`` is its t-test p-value adjusted (Holm) over all the results of the
    run; the verdicts themselves come from per-claim 95% intervals.
    """
    trained = [c for c in cells if c["result"].get("epochs")]
    results = [r for name in suite.extra.get("claims", ()) for r in claim_fn(name)(trained, suite)]
    raw = [r.diff.get("p") for r in results]
    adjusted = holm([p if isinstance(p, (int, float)) else math.nan for p in raw])
    return [
        dataclasses.replace(r, p_holm=p if math.isfinite(p) else None)
        for r, p in zip(results, adjusted)
    ]


# --- Why BN works (issue 17): noise-injection, precise-bn, bn-only -------------------------
EQUIVALENCE_PP = 0.01
"""The equivalence margin of "trains about as well": the interval of Δ inside ±1 pp."""


def _variant(name: str) -> Side:
    return name, lambda c: c["variant"] == name


def equivalent(results: list[ClaimResult], margin: float) -> list[ClaimResult]:
    """Equivalence verdicts: supported when Δ's 95% interval lies inside ±``margin``,
    contradicted when it lies wholly outside, unresolved otherwise."""
    out = []
    for r in results:
        lo, hi = r.diff.get("lo"), r.diff.get("hi")
        verdict = UNRESOLVED
        if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and math.isfinite(lo + hi):
            if -margin < lo and hi < margin:
                verdict = SUPPORTED
            elif lo > margin or hi < -margin:
                verdict = CONTRADICTED
        out.append(dataclasses.replace(r, verdict=verdict, own_verdict=verdict, pooled={}))
    return out


def above_constant(
    cells: list[Cell], claim: str, what: str, metric: PerSeed, side: Side, base: float, s: Scale
) -> list[ClaimResult]:
    """Claim "side's per-seed ``metric`` is above ``base``" per backend: Δ = metric − base."""
    out = []
    label, keep = side
    for name, members in by_backend(cells).items():
        xs = list(seed_values(members, keep, metric).values())
        d = difference(xs, [base] * len(xs), paired=True, counts=s.counts)
        summary = summarize(xs)
        text = f"{label} {describe(summary, s.fmt, s.factor)} vs {s.num(base)}"
        verdict = verdict_of(d, True)
        out.append(
            ClaimResult(
                claim,
                name,
                what,
                f"{text}; {describe_diff(d, s)}",
                verdict,
                {label: asdict(summary), "base": base},
                d.to_dict(),
                s.unit,
                s.factor,
                verdict,
            )
        )
    return out


def noisy_bn_as_good(cells: list[Cell], suite: Any) -> list[ClaimResult]:
    """Noisy BN trains about as well as BN: final val acc within ±1 pp (equivalence)."""
    what = "final val acc (%); supported when the 95% interval of Δ lies inside ±1 pp"
    sides = (_variant("bn-noisy"), _variant("bn"))
    claim = "BN with injected noise trains about as well as BN"
    results = versus(cells, claim, what, mean_of(final_acc), sides, True, PP)
    return equivalent(results, EQUIVALENCE_PP)


def _probe_claim(cells: list[Cell], suite: Any, key: str, claim: str, what: str) -> Any:
    metric = mean_of(lambda c: probe_mean(c, key))
    sides = pair(suite, "bn", "no_bn")
    return versus(cells, claim, what, metric, sides, key.startswith("ics"), Scale(1, "", ".4f"))


def bn_smoother_loss(cells: list[Cell], suite: Any) -> list[ClaimResult]:
    """BN's loss changes less along the gradient (loss variation, lower with BN)."""
    what = "loss variation along the gradient (max − min over the step sizes), mean over probes"
    claim = "BN's loss landscape is smoother (loss variation)"
    return _probe_claim(cells, suite, "loss_variation", claim, what)


def bn_smoother_gradient(cells: list[Cell], suite: Any) -> list[ClaimResult]:
    """BN's gradients are more predictive: lower effective β-smoothness."""
    what = "effective β-smoothness max_η ‖∇L(θ−ηg) − g‖ / ‖ηg‖, mean over probes"
    claim = "BN's gradients are more predictive (effective β-smoothness)"
    return _probe_claim(cells, suite, "beta_smoothness", claim, what)


def bn_no_ics_reduction(cells: list[Cell], suite: Any) -> list[ClaimResult]:
    """BN does not reduce internal covariate shift: ‖G − G'‖ no lower with BN."""
    what = (
        "ICS ‖G − G'‖₂ of Dense layers 1.. (gradient change when the layers before move), mean "
        "over probes and layers; supported = higher with BN, contradicted = lower with BN"
    )
    claim = "BN does not reduce internal covariate shift"
    return _probe_claim(cells, suite, "ics_l2", claim, what)


def _at(cells: list[Cell], key: str, pick: Callable[[list[Any]], Any]) -> list[Cell]:
    values = [cell_key(c, key) for c in cells]
    chosen = pick(values) if values else None
    return [c for c, v in zip(cells, values) if v == chosen]


def precise_small_batch(cells: list[Cell], suite: Any) -> list[ClaimResult]:
    """At the smallest batch, recomputed statistics beat the running averages."""
    chosen = _at(_at(cells, "train.batch_size", min), "model.bn_momentum", max)
    size = cell_key(chosen[0], "train.batch_size") if chosen else "-"
    what = f"val acc with precise statistics − with running averages at batch {size} (pp)"
    claim = "At small batch, recomputing BN statistics recovers accuracy"
    side = ("precise − running", lambda c: True)
    return above_constant(chosen, claim, what, mean_of(precise_gain), side, 0.0, PP)


def precise_high_momentum(cells: list[Cell], suite: Any) -> list[ClaimResult]:
    """At the slowest running average, recomputed statistics beat the running averages."""
    chosen = _at(_at(cells, "model.bn_momentum", min), "train.batch_size", max)
    m = cell_key(chosen[0], "model.bn_momentum") if chosen else math.nan
    what = (
        f"val acc with precise statistics − with running averages at BN momentum {m:g} (core "
        f"convention; Keras/Flax {1 - m:g}) and the largest batch (pp)"
    )
    claim = "At high momentum, recomputing BN statistics recovers accuracy"
    side = ("precise − running", lambda c: True)
    return above_constant(chosen, claim, what, mean_of(precise_gain), side, 0.0, PP)


def bn_only_above_chance(cells: list[Cell], suite: Any) -> list[ClaimResult]:
    """Training only BN's scale and offset gets far above chance."""
    base = chance(cells[0]) if cells else 0.1
    what = "final val acc of BN-only training (%) against chance (1 / classes)"
    claim = "Training only BN is far above chance"
    return above_constant(cells, claim, what, mean_of(final_acc), _variant("bn-only"), base, PP)


def bn_only_beats_random(cells: list[Cell], suite: Any) -> list[ClaimResult]:
    """BN-only beats training as many randomly chosen Dense weights."""
    sides = (_variant("bn-only"), _variant("random-subset"))
    claim = "Training only BN beats training as many random weights"
    return versus(cells, claim, "final val acc (%)", mean_of(final_acc), sides, True, PP)


CLAIMS.update(
    noisy_bn_as_good=noisy_bn_as_good,
    bn_smoother_loss=bn_smoother_loss,
    bn_smoother_gradient=bn_smoother_gradient,
    bn_no_ics_reduction=bn_no_ics_reduction,
    precise_small_batch=precise_small_batch,
    precise_high_momentum=precise_high_momentum,
    bn_only_above_chance=bn_only_above_chance,
    bn_only_beats_random=bn_only_beats_random,
)


# --- GroupNorm in the batch-size sweeps, ghost-batch BN (issue 17) ---------------------------
GN_MARGIN_PP = 0.01
"""Non-inferiority margin of "GN's accuracy does not depend on the batch size": 1 pp."""


def acc_or_chance(cell: Cell) -> float:
    """Final val acc; a diverged cell counts as chance (1 / classes); a failed one is NaN."""
    if cell["status"] == "diverged":
        return 1.0 / float(cell["spec"]["model"].get("num_classes") or 10)
    return final_acc(cell)


def small_batch_drop(members: list[Cell]) -> float:
    """One seed's final val acc at its largest batch size minus at its smallest (the "drop")."""
    accs = {cell_key(c, "train.batch_size"): acc_or_chance(c) for c in members}
    if len(accs) < 2:
        return math.nan
    return accs[max(accs)] - accs[min(accs)]


def _drop_what(cells: list[Cell]) -> str:
    sizes = sorted({cell_key(c, "train.batch_size") for c in cells}) or [math.nan]
    return (
        f"per seed, the drop: final val acc at batch {sizes[-1]} − at batch {sizes[0]} (pp; a "
        "diverged cell counts as chance)"
    )


def gn_batch_independent(cells: list[Cell], suite: Any) -> list[ClaimResult]:
    """GN's accuracy does not depend on the batch size: its small-batch drop is no larger than
    LayerNorm's plus a margin (non-inferiority, paired by seed).

    Batch size changes every model's accuracy here (steps per epoch, samples seen, no lr
    scaling), so "does not depend" is measured against a control that sees the same: LayerNorm,
    a normalization that never looks at the batch either. Supported when the 95% interval of
    (LayerNorm drop + margin) − (GN drop) lies above 0, i.e. GN's batch dependence exceeds a
    batch-independent normalization's by less than the margin.
    """
    margin = float(suite.extra.get("gn_margin", GN_MARGIN_PP))
    gn, control = roles(suite).get("groupnorm", "groupnorm"), roles(suite)["layernorm"]

    def metric(members: list[Cell]) -> float:
        shift = margin if members and members[0]["variant"] == control else 0.0
        return small_batch_drop(members) + shift

    label = f"{control} drop + {margin * 100:g} pp margin"
    sides = ((label, lambda c: c["variant"] == control), _variant_side(gn, "drop"))
    what = f"{_drop_what(cells)}; GN's against LayerNorm's + {margin * 100:g} pp"
    claim = "GN's accuracy does not depend on the batch size (vs LayerNorm, margin)"
    return versus(cells, claim, what, metric, sides, True, PP)


def _variant_side(name: str, suffix: str) -> Side:
    return f"{name} {suffix}", lambda c: c["variant"] == name


def bn_drop_vs_gn(cells: list[Cell], suite: Any) -> list[ClaimResult]:
    """BN's accuracy falls at small batch more than GN's (difference in differences, paired)."""
    bn, gn = roles(suite)["bn"], roles(suite).get("groupnorm", "groupnorm")
    sides = (_variant_side(bn, "drop"), _variant_side(gn, "drop"))
    claim = "BN's accuracy falls at small batch, GN's less"
    return versus(cells, claim, _drop_what(cells), small_batch_drop, sides, True, PP)


def ghost_intermediate(cells: list[Cell], suite: Any) -> list[ClaimResult]:
    """A pre-declared intermediate ghost batch (``extra["ghost_pick"]``) beats both extremes.

    Two results per backend: g = pick against the largest g of the run (the full batch when it
    equals the batch size) and against the smallest; final val acc, paired by seed (same
    initial weights and batch order, only the normalization differs).
    """
    key = "model.ghost_batch"
    sizes = sorted({cell_key(c, key) for c in cells})
    pick = suite.extra.get("ghost_pick")
    if not sizes or pick is None:
        return []
    batch = cell_key(cells[0], "train.batch_size")

    def side(g: Any) -> Side:
        return f"g={g}", lambda c: cell_key(c, key) == g

    out: list[ClaimResult] = []
    for other in (sizes[-1], sizes[0]):
        if other == pick:
            continue
        name = "the full batch" if other == batch else "the largest g" if other > pick else ""
        name = name or "the smallest g"
        claim = f"Ghost batches of {pick} beat {name} (g={other})"
        what = f"final val acc (%) at batch {batch}"
        sides = (side(pick), side(other))
        out += versus(cells, claim, what, mean_of(final_acc), sides, True, PP)
    return out


CLAIMS.update(
    gn_batch_independent=gn_batch_independent,
    bn_drop_vs_gn=bn_drop_vs_gn,
    ghost_intermediate=ghost_intermediate,
)
