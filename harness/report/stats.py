"""Small statistics used by every report: mean +- sd, 95% intervals, grouping of cells."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# Two-sided 95% Student t quantiles for n-1 degrees of freedom (n = 2..30), then normal.
T95 = [
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
]


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
        """True when the two 95% intervals overlap (the difference is not resolved)."""
        return not (self.hi < other.lo or other.hi < self.lo)


def summarize(values: Iterable[Any]) -> Summary:
    """Summary of the finite values in ``values``."""
    raw = list(values)
    finite = [float(v) for v in raw if isinstance(v, (int, float)) and math.isfinite(v)]
    n = len(finite)
    if n == 0:
        return Summary(0, math.nan, math.nan, math.nan, math.nan, len(raw))
    mean = statistics.fmean(finite)
    if n == 1:
        return Summary(1, mean, 0.0, -math.inf, math.inf, len(raw) - 1)
    sd = statistics.stdev(finite)
    t = T95[n - 2] if n - 2 < len(T95) else 1.96
    half = t * sd / math.sqrt(n)
    return Summary(n, mean, sd, mean - half, mean + half, len(raw) - n)


def group(cells: list[dict[str, Any]], *keys: str) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
    """Cells grouped by the given keys (``point``: the sweep point as text), first seen first."""
    out: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for cell in cells:
        out[tuple(cell_key(cell, k) for k in keys)].append(cell)
    return dict(out)


def cell_key(cell: dict[str, Any], key: str) -> Any:
    """A grouping value of a cell: a column, ``point``, ``seed`` or a ``train.x``/``model.x``."""
    spec = cell["spec"]
    if key == "point":
        return ",".join(
            f"{k.split('.')[-1]}={v}" for k, v in spec["extra"].get("point", {}).items()
        )
    if key == "seed":
        return spec["train"]["seed"]
    if "." in key:
        part, _, name = key.partition(".")
        return spec[part][name]
    return cell[key]


def median(values: Iterable[float]) -> float:
    """Median of the finite values, NaN when there are none."""
    finite = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
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
    finite = sorted(float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v))
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
