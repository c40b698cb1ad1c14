"""Statistics of the results layer, with :mod:`scipy.stats`: summaries, differences, power.

- :func:`summarize`: mean ± sd and a 95% t-interval of one arm's per-seed values.
- :func:`difference`: the 95% interval of the *difference* between two arms, the basis of every
  verdict: Welch's interval for independent arms, a paired t-interval when the arms share seeds
  (same initial weights and batch order), or, for counts (epochs to a target, stable learning
  rates), a percentile bootstrap of the mean difference, which cannot leave the possible range.
  It carries a standardized effect size and, when the interval contains 0, the number of seeds
  that would resolve the observed effect at 80% power.
- :func:`holm`: Holm's step-down adjustment of a report's p-values.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from harness.cells import cell_key, group

__all__ = [
    "CONFIDENCE",
    "Difference",
    "Spread",
    "Summary",
    "cell_key",
    "difference",
    "group",
    "holm",
    "median",
    "paired_ratios",
    "seeds_needed",
    "spread",
    "summarize",
    "t_quantile",
]

CONFIDENCE = 0.95
POWER = 0.8
MAX_SEEDS_NEEDED = 10_000
BOOTSTRAP_RESAMPLES = 9_999
WELCH, PAIRED, BOOTSTRAP, BOOTSTRAP_PAIRED = "welch", "paired-t", "bootstrap", "paired-bootstrap"


def t_quantile(df: float, confidence: float = CONFIDENCE) -> float:
    """Two-sided Student-t quantile for ``df`` degrees of freedom (``inf`` df: the normal one)."""
    return float(sps.t.ppf(0.5 + confidence / 2, df))


def _finite(values: Iterable[Any]) -> list[float]:
    return [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]


@dataclass(frozen=True)
class Summary:
    """Mean, sample sd and 95% t-interval of some finite values (NaN/None excluded)."""

    n: int
    mean: float
    sd: float
    lo: float
    hi: float
    excluded: int = 0

    def text(self, fmt: str = ".4f", scale: float = 1.0) -> str:
        """``mean +- sd (n=N)``; a single value prints alone; no value prints ``-``."""
        if self.n == 0:
            return "-"
        if self.n == 1:
            return f"{self.mean * scale:{fmt}}"
        return f"{self.mean * scale:{fmt}} ± {self.sd * scale:{fmt}}"

    def overlaps(self, other: Summary) -> bool:
        """True when the two 95% intervals overlap (a display aid; verdicts use differences)."""
        return not (self.hi < other.lo or other.hi < self.lo)


def summarize(values: Iterable[Any]) -> Summary:
    """Summary of the finite values in ``values``."""
    raw = list(values)
    finite = _finite(raw)
    n = len(finite)
    if n == 0:
        return Summary(0, math.nan, math.nan, math.nan, math.nan, len(raw))
    mean = statistics.fmean(finite)
    if n == 1:
        return Summary(1, mean, 0.0, -math.inf, math.inf, len(raw) - 1)
    sd = statistics.stdev(finite)
    half = t_quantile(n - 1) * sd / math.sqrt(n)
    return Summary(n, mean, sd, mean - half, mean + half, len(raw) - n)


@dataclass(frozen=True)
class Difference:
    """The difference ``a − b`` of two arms' means with its 95% interval.

    ``method`` is ``welch``, ``paired-t``, ``bootstrap`` or ``paired-bootstrap``; ``effect`` is
    the standardized effect size (Cohen's d for independent arms, d_z = mean/sd of the per-seed
    differences for paired ones; NaN when the spread is 0); ``p`` the two-sided p-value of the
    matching t-test (NaN for a bootstrap); ``seeds_needed`` the seeds per arm that would give 80%
    power for the observed effect (0 when resolved or not computable).
    """

    diff: float
    lo: float
    hi: float
    n_a: int
    n_b: int
    method: str
    effect: float = math.nan
    p: float = math.nan
    seeds_needed: int = 0

    @property
    def resolved(self) -> bool:
        """True when the interval excludes 0."""
        return self.lo > 0 or self.hi < 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN/inf become None)."""
        return {k: _json_num(v) for k, v in asdict(self).items()}


def _json_num(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _pairs(a: Sequence[float], b: Sequence[float]) -> list[float]:
    return [x - y for x, y in zip(a, b) if math.isfinite(x) and math.isfinite(y)]


def _power_two_sample(effect: float, n: int) -> float:
    df = 2 * n - 2
    nc = abs(effect) * math.sqrt(n / 2)
    crit = t_quantile(df)
    return float(sps.nct.sf(crit, df, nc) + sps.nct.cdf(-crit, df, nc))


def _power_one_sample(effect: float, n: int) -> float:
    df = n - 1
    nc = abs(effect) * math.sqrt(n)
    crit = t_quantile(df)
    return float(sps.nct.sf(crit, df, nc) + sps.nct.cdf(-crit, df, nc))


def seeds_needed(effect: float, paired: bool, power: float = POWER) -> int:
    """Smallest number of seeds (per arm) giving ``power`` to resolve standardized ``effect``.

    A two-sided t-test at the 5% level: one-sample on the per-seed differences when ``paired``
    (effect d_z), else two-sample with equal arms (Cohen's d); noncentral t from scipy. Returns
    0 when the effect is 0, NaN or needs more than :data:`MAX_SEEDS_NEEDED` seeds.
    """
    if not math.isfinite(effect) or effect == 0:
        return 0
    fn = _power_one_sample if paired else _power_two_sample
    lo, hi = 2, 4
    while fn(effect, hi) < power:
        lo, hi = hi, hi * 2
        if hi > MAX_SEEDS_NEEDED:
            return 0
    while lo < hi:  # power grows with n: the first n that reaches it
        mid = (lo + hi) // 2
        if fn(effect, mid) >= power:
            hi = mid
        else:
            lo = mid + 1
    return hi


def _bootstrap_interval(
    samples: tuple[np.ndarray, ...], paired: bool, seed: int
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean difference (bounded by the data's range)."""
    if paired:
        diffs = samples[0]
        if np.ptp(diffs) == 0:
            return float(diffs[0]), float(diffs[0])
        res = sps.bootstrap(
            (diffs,),
            np.mean,
            confidence_level=CONFIDENCE,
            n_resamples=BOOTSTRAP_RESAMPLES,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
    else:
        a, b = samples
        if np.ptp(a) == 0 and np.ptp(b) == 0:
            return float(a[0] - b[0]), float(a[0] - b[0])

        def mean_diff(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
            return np.mean(x, axis=axis) - np.mean(y, axis=axis)

        res = sps.bootstrap(
            (a, b),
            mean_diff,
            confidence_level=CONFIDENCE,
            n_resamples=BOOTSTRAP_RESAMPLES,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
    ci = res.confidence_interval
    return float(ci.low), float(ci.high)


def difference(
    a: Sequence[float],
    b: Sequence[float],
    paired: bool = False,
    counts: bool = False,
    seed: int = 0,
) -> Difference:
    """The 95% interval of ``mean(a) − mean(b)``.

    ``paired``: ``a[i]`` and ``b[i]`` come from the same seed (pairs with a non-finite value are
    dropped). ``counts``: the values are counts or censored ranks (epochs to a target), so the
    interval is a percentile bootstrap (``seed`` fixes its resampling) instead of a t-interval.
    With fewer than 2 values (pairs) per arm the interval is infinite (unresolved).
    """
    if paired:
        diffs = np.array(_pairs(a, b))
        n = len(diffs)
        if n == 0:
            return Difference(math.nan, -math.inf, math.inf, 0, 0, PAIRED)
        mean = float(np.mean(diffs))
        if n < 2:
            return Difference(mean, -math.inf, math.inf, n, n, PAIRED)
        sd = float(np.std(diffs, ddof=1))
        effect = mean / sd if sd > 0 else math.nan
        if counts:
            lo, hi = _bootstrap_interval((diffs,), True, seed)
            method, p = BOOTSTRAP_PAIRED, math.nan
        elif sd == 0:
            lo = hi = mean
            method, p = PAIRED, (1.0 if mean == 0 else 0.0)
        else:
            half = t_quantile(n - 1) * sd / math.sqrt(n)
            lo, hi = mean - half, mean + half
            method, p = PAIRED, float(sps.ttest_1samp(diffs, 0.0).pvalue)
        d = Difference(mean, lo, hi, n, n, method, effect, p)
        return _with_seeds(d, True)
    xa, xb = np.array(_finite(a)), np.array(_finite(b))
    na, nb = len(xa), len(xb)
    if na == 0 or nb == 0:
        return Difference(math.nan, -math.inf, math.inf, na, nb, WELCH)
    mean = float(np.mean(xa) - np.mean(xb))
    if na < 2 or nb < 2:
        return Difference(mean, -math.inf, math.inf, na, nb, WELCH)
    va, vb = float(np.var(xa, ddof=1)), float(np.var(xb, ddof=1))
    pooled = math.sqrt(((na - 1) * va + (nb - 1) * vb) / (na + nb - 2))
    effect = mean / pooled if pooled > 0 else math.nan
    if counts:
        lo, hi = _bootstrap_interval((xa, xb), False, seed)
        method, p = BOOTSTRAP, math.nan
    elif va == 0 and vb == 0:
        lo = hi = mean
        method, p = WELCH, (1.0 if mean == 0 else 0.0)
    else:
        se2 = va / na + vb / nb
        df = se2**2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
        half = t_quantile(df) * math.sqrt(se2)
        lo, hi = mean - half, mean + half
        method = WELCH
        p = float(sps.ttest_ind(xa, xb, equal_var=False).pvalue)
    return _with_seeds(Difference(mean, lo, hi, na, nb, method, effect, p), False)


def _with_seeds(d: Difference, paired: bool) -> Difference:
    if d.resolved:
        return d
    need = seeds_needed(d.effect, paired)
    return Difference(d.diff, d.lo, d.hi, d.n_a, d.n_b, d.method, d.effect, d.p, need)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (NaN stays NaN), in the input order."""
    finite = [(p, i) for i, p in enumerate(pvalues) if math.isfinite(p)]
    out = [math.nan] * len(pvalues)
    m, running = len(finite), 0.0
    for rank, (p, i) in enumerate(sorted(finite)):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def median(values: Iterable[float]) -> float:
    """Median of the finite values, NaN when there are none."""
    finite = _finite(values)
    return statistics.median(finite) if finite else math.nan


@dataclass(frozen=True)
class Spread:
    """Median, quartiles and range of repeated measurements (finite values only)."""

    n: int
    median: float
    q1: float
    q3: float
    lo: float
    hi: float

    def text(self, fmt: str = ".3f", scale: float = 1.0) -> str:
        """``median [q1–q3]``; one value prints alone; none prints ``-``."""
        if self.n == 0:
            return "-"
        mid = f"{self.median * scale:{fmt}}"
        if self.n == 1:
            return mid
        return f"{mid} [{self.q1 * scale:{fmt}}–{self.q3 * scale:{fmt}}]"

    @property
    def iqr(self) -> float:
        """Interquartile range ``q3 - q1``."""
        return self.q3 - self.q1


def spread(values: Iterable[Any]) -> Spread:
    """:class:`Spread` of the finite numbers in ``values`` (quartiles by linear interpolation)."""
    finite = sorted(_finite(values))
    n = len(finite)
    if n == 0:
        return Spread(0, math.nan, math.nan, math.nan, math.nan, math.nan)
    if n == 1:
        return Spread(1, finite[0], finite[0], finite[0], finite[0], finite[0])
    q1, mid, q3 = statistics.quantiles(finite, n=4, method="inclusive")
    return Spread(n, mid, q1, q3, finite[0], finite[-1])


def paired_ratios(top: list[float], bottom: list[float]) -> list[float]:
    """``top[i] / bottom[i]`` for pairs measured together (same round), finite ones only."""
    out = []
    for a, b in zip(top, bottom):
        if math.isfinite(a) and math.isfinite(b) and b > 0:
            out.append(a / b)
    return out
