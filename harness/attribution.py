"""Which framework default makes two backends disagree: the gap at native defaults, split by
convention, from the one-at-a-time switch cells of :func:`harness.suite.expand`.

Per base variant, backend and seed there is a native cell (every convention the framework's), a
mapped cell (every convention translated from the core's values) and one cell per switch (mapped
but that one convention the framework's; ``running_var``: forced to the unbiased variance, the
one PyTorch feeds). For a pair of backends A (the reference, the first backend) and B, per seed:

- the native gap ``B_native - A_native`` and the mapped gap ``B_mapped - A_mapped``;
- a switched convention's share of the gap: ``(B_s - B_mapped) - (A_s - A_mapped)``, what it adds
  to the gap when both backends leave it to their framework;
- the running variance's share: what the gap loses when both feed the unbiased variance,
  ``(B_mapped - A_mapped) - (B_s - A_s)`` (it is part of the mapped gap: no framework lets it be
  mapped, so mapped runs keep their own);
- the rest: native gap minus every share (arithmetic, interactions between conventions).

Intervals are paired-by-seed 95% t-intervals (:func:`harness.stats.difference`): the seed fixes
the batch order (and the canonical init of the mapped arms).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from harness.cells import final
from harness.stats import Difference, difference

Cell = dict[str, Any]
METRICS = (("val_acc", 100.0), ("val_loss", 1.0))
"""Final-epoch metrics attributed, with their display scale (accuracy in pp)."""
RUNNING_VAR = "running_var"
Arms = dict[str, dict[str, dict[int, dict[str, float]]]]


def arms(cells: list[Cell]) -> dict[tuple[str, str], Arms]:
    """``(base, device) -> backend -> switch -> seed -> metric -> value`` of the ok cells that
    belong to an attribution (backends in the order first seen)."""
    out: dict[tuple[str, str], Arms] = defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))
    for cell in cells:
        info = cell["spec"].get("extra", {}).get("attribution")
        if not info or cell["status"] != "ok":
            continue
        values = {m: final(cell, m) for m, _ in METRICS}
        seed = int(cell["spec"]["train"]["seed"])
        out[(info["base"], cell["device"])][cell["backend"]][info["switch"]][seed] = values
    return out


def _per_seed(table: Arms, a: str, b: str, metric: str, term: Any) -> list[float]:
    seeds = sorted(set.intersection(*(set(v) for v in (*table[a].values(), *table[b].values()))))
    return [term(lambda be, sw, s=s: table[be][sw][s][metric]) for s in seeds]


def _diff(values: list[float], scale: float) -> Difference:
    scaled = [v * scale for v in values if math.isfinite(v)]
    return difference(scaled, [0.0] * len(scaled), paired=True)


def pair_rows(table: Arms, a: str, b: str, metric: str, scale: float) -> list[dict[str, Any]]:
    """The rows of one backend pair and metric: native gap, mapped gap, each share, the rest."""
    switches = [s for s in table[b] if s in table[a] and s not in ("native", "mapped")]

    def gap(sw: str) -> Any:
        return lambda v: v(b, sw) - v(a, sw)

    def share(sw: str) -> Any:
        if sw == RUNNING_VAR:
            return lambda v: (v(b, "mapped") - v(a, "mapped")) - (v(b, sw) - v(a, sw))
        return lambda v: (v(b, sw) - v(b, "mapped")) - (v(a, sw) - v(a, "mapped"))

    def rest(v: Any) -> float:
        return float(gap("native")(v) - sum(share(sw)(v) for sw in switches))

    terms = [("native gap", gap("native")), ("mapped gap", gap("mapped"))]
    terms += [(sw, share(sw)) for sw in switches] + [("rest", rest)]
    rows = []
    for name, term in terms:
        diff = _diff(_per_seed(table, a, b, metric, term), scale)
        rows.append({"term": name, "metric": metric, **diff.to_dict()})
    return rows


def attribution(cells: list[Cell]) -> list[dict[str, Any]]:
    """Per base variant, device and backend pair (the first backend against each other one):
    the rows of :func:`pair_rows` for every metric of :data:`METRICS`."""
    out = []
    for (base, device), table in arms(cells).items():
        backends = [n for n, t in table.items() if {"native", "mapped"} <= t.keys()]
        for other in backends[1:]:
            rows = [r for m, sc in METRICS for r in pair_rows(table, backends[0], other, m, sc)]
            out.append({"base": base, "device": device, "a": backends[0], "b": other, "rows": rows})
    return out


def effective_conventions(cells: list[Cell]) -> dict[str, dict[str, Any]]:
    """``backend -> switch -> conventions`` the cells recorded (first seed seen)."""
    out: dict[str, dict[str, Any]] = defaultdict(dict)
    for cell in cells:
        info = cell["spec"].get("extra", {}).get("attribution") or {"switch": "native"}
        conv = cell["result"].get("conventions")
        if conv:
            out[cell["backend"]].setdefault(info["switch"], conv)
    return dict(out)
