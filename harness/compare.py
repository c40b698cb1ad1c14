"""``harness compare A B``: what changed between two runs, as markdown on standard output.

A run is a run id of the results file, ``latest``, or a report's ``results.json`` (so a new
run can be held against a reference report). The comparison lists the settings (a setting left
to the suite shows the value the cells ran with) and environment that differ, then, per
backend, device, variant and sweep point, the final validation accuracy and loss of both runs
(mean ± sd over seeds), the change B − A with the 95% interval of the difference
(:func:`harness.stats.difference`: paired by seed when both runs trained the same seeds with
the same settings, Welch's otherwise) and its verdict, whether the metrics of the seeds both
ran are bit-identical, the ratio of median epoch times, and each claim's verdict in both runs.
:class:`Thresholds` make it a CI gate (docs/compare.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tabulate import tabulate

from harness import claims
from harness.cells import Cell, final, group, series
from harness.plugins import get_plugins
from harness.runs import load_run
from harness.stats import Difference, difference
from harness.suite import cells_dataset
from harness.summary import backend_versions, summary_rows

Run = tuple[dict[str, Any], list[dict[str, Any]]]
METRICS = ("train_loss", "val_loss", "val_acc")
ENV_KEYS = ("python", "cpu", "cores", "threads", "git_commit")
DEFAULTED = {
    "settings.epochs": ("train", "epochs"),
    "settings.batch_size": ("train", "batch_size"),
    "settings.lr": ("train", "lr"),
    "settings.init": ("model", "init"),
}
"""Settings stored as None (the suite's default) and the spec field that holds their value."""


def load(ref: str, store_arg: str | None) -> Run:
    """The run and cells named by ``ref`` (run id, ``latest`` or a results.json path)."""
    return load_run(ref, store_arg)


def flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a.b": 1}`` for ``{"a": {"b": 1}}``; lists stay values."""
    if not isinstance(value, dict):
        return {prefix: value}
    out: dict[str, Any] = {}
    for key, inner in value.items():
        out.update(flat(inner, f"{prefix}.{key}" if prefix else str(key)))
    return out


def differences(a: Run, b: Run) -> list[list[str]]:
    """Rows ``[what, A, B]`` for every setting, environment entry and version that differs."""
    sides = []
    for run, cells in (a, b):
        env = {k: run["env"].get(k) for k in ENV_KEYS}
        settings = flat({"suite": run["suite"], "settings": run["settings"]})
        for key, where in DEFAULTED.items():
            if key in settings and settings[key] is None:
                settings[key] = effective(cells, *where)
        sides.append({**settings, **flat({"env": env, "versions": backend_versions(cells)})})
    keys = sorted(set(sides[0]) | set(sides[1]))
    return [
        [key, _text(sides[0].get(key)), _text(sides[1].get(key))]
        for key in keys
        if sides[0].get(key) != sides[1].get(key)
    ]


def effective(cells: list[Cell], part: str, name: str) -> str:
    """What a setting left to the suite was: the values the cells' specs hold, e.g.
    ``10 (suite default)`` or ``0.01, 0.1 (suite default)`` for a swept one."""
    values = sorted({c["spec"][part].get(name) for c in cells} - {None}, key=str)
    shown = ", ".join(str(v) for v in values) if values else "?"
    return f"{shown} (suite default)"


def _text(value: Any) -> str:
    if value is None:
        return "-"
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def verdict(d: Difference) -> str:
    """``higher in B`` / ``lower in B`` when the 95% interval of B − A excludes 0, else
    ``within noise`` (``unresolved (1 seed)`` with fewer than two seeds on a side)."""
    if d.n_a == 0 or d.n_b == 0:
        return "-"
    if d.n_a < 2 or d.n_b < 2:
        return "unresolved (1 seed)" if d.diff != 0 else "same value"
    if d.resolved:
        return "higher in B" if d.lo > 0 else "lower in B"
    return "within noise"


def _by_seed(cells: list[Cell]) -> dict[int, Cell]:
    """The ok cells with epoch data, by seed."""
    return {_seed(c): c for c in cells if c["status"] == "ok" and series(c, "val_acc")}


def _same_setup(a: Cell, b: Cell) -> bool:
    """Whether two cells trained the same model on the same data with the same settings."""
    sa, sb = a["spec"], b["spec"]
    data = ("name", "standardize", "limit")
    return (
        sa["model"] == sb["model"]
        and sa["train"] == sb["train"]
        and all(sa["data"].get(k) == sb["data"].get(k) for k in data)
    )


def acc_difference(a: list[Cell], b: list[Cell]) -> Difference:
    """The 95% interval of B − A in final validation accuracy: paired by seed when both runs
    trained the same seeds with the same model, data and settings (a seed then fixes the
    initial weights and batch order of both), Welch's interval otherwise."""
    va, vb = _by_seed(a), _by_seed(b)
    paired = bool(va) and va.keys() == vb.keys() and all(_same_setup(va[s], vb[s]) for s in va)
    seeds = sorted(va) if paired else None
    xa = [final(va[s], "val_acc") for s in (seeds or va)]
    xb = [final(vb[s], "val_acc") for s in (seeds or vb)]
    return difference(xb, xa, paired=paired)


def identical(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> str:
    """Whether the seeds both runs trained have bit-identical per-epoch metrics."""
    runs = [
        {c["spec"]["train"]["seed"]: c for c in cells if series(c, "val_acc")} for cells in (a, b)
    ]
    seeds = sorted(set(runs[0]) & set(runs[1]))
    if not seeds:
        return "-"
    same = sum(all(series(runs[0][s], m) == series(runs[1][s], m) for m in METRICS) for s in seeds)
    return "yes" if same == len(seeds) else f"{same}/{len(seeds)} seeds"


@dataclass(frozen=True)
class Match:
    """One backend/device/variant/point in both runs (``a``/``b``: its summary rows, None
    when only one run has it), the accuracy difference B − A and the epoch-time ratio B/A."""

    key: tuple[str, str, str, str]
    a: dict[str, Any] | None
    b: dict[str, Any] | None
    diff: Difference | None = None
    time_ratio: float = math.nan
    identical: str = "-"

    @property
    def name(self) -> str:
        """``backend/device/variant (point)``."""
        point = f" ({self.key[3]})" if self.key[3] else ""
        return f"{self.key[0]}/{self.key[1]}/{self.key[2]}{point}"


def matches(a: Run, b: Run) -> list[Match]:
    """One :class:`Match` per backend, device, variant and point found in either run."""
    suite = get_plugins().suites.get(b[0]["suite"])
    groups = []
    for _, cells in (a, b):
        target = suite.for_dataset(cells_dataset(cells)).target_acc
        groups.append({_key(r): r for r in summary_rows(cells, target)})
    members = [_members(cells) for _, cells in (a, b)]
    out = []
    for key in list(groups[0]) + [k for k in groups[1] if k not in groups[0]]:
        ra, rb = groups[0].get(key), groups[1].get(key)
        if ra is None or rb is None:
            out.append(Match(key, ra, rb))
            continue
        ma, mb = members[0].get(key, []), members[1].get(key, [])
        ratio = _ratio(rb["median_epoch_s"], ra["median_epoch_s"])
        out.append(Match(key, ra, rb, acc_difference(ma, mb), ratio, identical(ma, mb)))
    return out


def rows(found: list[Match]) -> list[list[str]]:
    """The results table's rows."""
    out = []
    for m in found:
        name = m.key[2] + (f" ({m.key[3]})" if m.key[3] else "")
        if m.a is None or m.b is None or m.diff is None:
            out.append([m.key[0], m.key[1], name, "only in A" if m.b is None else "only in B"])
            continue
        ra, rb, d = m.a, m.b, m.diff
        out.append(
            [
                m.key[0],
                m.key[1],
                name,
                f"{ra['ok']}/{ra['seeds']} → {rb['ok']}/{rb['seeds']}",
                f"{ra['final_val_acc'].text('.2f', 100)} → {rb['final_val_acc'].text('.2f', 100)}",
                _interval(d),
                verdict(d),
                f"{ra['final_val_loss'].text()} → {rb['final_val_loss'].text()}",
                m.identical,
                "-" if math.isnan(m.time_ratio) else f"{m.time_ratio:.2f}",
            ]
        )
    return out


def _interval(d: Difference) -> str:
    """``+0.12 [-0.30, +0.54] paired-t`` in percentage points (``-`` without data)."""
    if not math.isfinite(d.diff):
        return "-"
    if not (math.isfinite(d.lo) and math.isfinite(d.hi)):
        return f"{d.diff * 100:+.2f}"
    return f"{d.diff * 100:+.2f} [{d.lo * 100:+.2f}, {d.hi * 100:+.2f}] {d.method}"


def _seed(cell: dict[str, Any]) -> int:
    return int(cell["spec"]["train"]["seed"])


def _ratio(top: float, bottom: float) -> float:
    return top / bottom if bottom and math.isfinite(bottom) else math.nan


def _key(row: dict[str, Any]) -> tuple[str, str, str, str]:
    return (row["backend"], row["device"], row["variant"], row["point"])


def _members(cells: list[dict[str, Any]]) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
    return group(cells, "backend", "device", "variant", "point")


HEADERS = [
    "backend",
    "device",
    "variant",
    "ok/seeds A → B",
    "final val acc % A → B",
    "Δ pp B − A [95% CI]",
    "verdict",
    "final val loss A → B",
    "identical metrics",
    "epoch time B/A",
]


@dataclass(frozen=True)
class Thresholds:
    """What makes ``harness compare`` exit 1 (None / False: not checked).

    ``max_slowdown``: percent by which B's median epoch time may exceed A's;
    ``max_acc_drop``: percentage points by which B's mean final validation accuracy may fall
    below A's; ``verdict_change``: fail when a claim's verdict differs between the runs.
    """

    max_slowdown: float | None = None
    max_acc_drop: float | None = None
    verdict_change: bool = False

    @property
    def any(self) -> bool:
        """Whether any threshold is set."""
        return self.max_slowdown is not None or self.max_acc_drop is not None or self.verdict_change


Verdicts = dict[tuple[str, str], str]


def claim_verdicts(run: Run) -> Verdicts:
    """``(claim, backend/device) -> verdict`` for every claim the run's suite makes."""
    suite = get_plugins().suites.get(run[0]["suite"])
    return {(r.claim, r.where): r.verdict for r in claims.evaluate(run[1], suite)}


def failures(found: list[Match], va: Verdicts, vb: Verdicts, limits: Thresholds) -> list[str]:
    """One line per threshold a row (or claim) of B exceeds."""
    out = []
    for m in found:
        if limits.max_slowdown is not None and m.time_ratio > 1 + limits.max_slowdown / 100:
            slower = (m.time_ratio - 1) * 100
            out.append(
                f"{m.name}: median epoch time {slower:.1f}% slower in B "
                f"(--max-slowdown {limits.max_slowdown:g})"
            )
        if limits.max_acc_drop is not None and m.diff is not None:
            drop = -m.diff.diff * 100
            if math.isfinite(drop) and drop > limits.max_acc_drop:
                out.append(
                    f"{m.name}: final val accuracy {drop:.2f} pp lower in B "
                    f"(--max-acc-drop {limits.max_acc_drop:g})"
                )
    if limits.verdict_change:
        for key in sorted(va.keys() & vb.keys()):
            if va[key] != vb[key]:
                out.append(
                    f"claim {key[0]} on {key[1]}: {va[key]} in A, {vb[key]} in B "
                    "(--fail-on-verdict-change)"
                )
    return out


def _claims_table(va: Verdicts, vb: Verdicts) -> list[str]:
    """The claims section: each claim's verdict in both runs."""
    keys = list(va) + [k for k in vb if k not in va]
    if not keys:
        return []
    table = [
        [
            claim,
            where,
            va.get((claim, where), "-"),
            vb.get((claim, where), "-"),
            "yes" if va.get((claim, where)) != vb.get((claim, where)) else "",
        ]
        for claim, where in keys
    ]
    headers = ["claim", "backend/device", "verdict A", "verdict B", "changed"]
    return ["", "## Claims", "", tabulate(table, headers, "github")]


def markdown(a: Run, b: Run, limits: Thresholds = Thresholds()) -> tuple[str, list[str]]:
    """The comparison of runs ``a`` and ``b`` as markdown, and the thresholds B exceeds."""
    lines = [f"# compare: {a[0]['run_id']} (A) → {b[0]['run_id']} (B)", ""]
    for label, (run, cells) in (("A", a), ("B", b)):
        lines.append(
            f"- **{label}**: `{run['run_id']}`, suite `{run['suite']}`, status "
            f"{run['status']}, {len(cells)} cells."
        )
    if a[0]["suite"] != b[0]["suite"]:
        lines.append("- The suites differ: only cells of the same backend, variant and point meet.")
    diff = differences(a, b)
    lines += ["", "## Settings and environment that differ", ""]
    lines.append(tabulate(diff, ["what", "A", "B"], "github") if diff else "None.")
    lines += ["", "## Results", ""]
    lines.append(
        "Final validation accuracy and loss, mean ± sd over the ok seeds. *Δ pp*: B − A in "
        "percentage points with its 95% interval, paired by seed (paired-t) when both runs "
        "trained the same seeds with the same settings, Welch's otherwise; the verdict says "
        "whether that interval excludes 0. *Identical metrics*: the seeds both runs trained "
        "have bit-identical per-epoch losses and accuracies. *Epoch time B/A*: ratio of "
        "median steady-state epoch times."
    )
    found = matches(a, b)
    lines += ["", tabulate(rows(found), HEADERS, "github", disable_numparse=True)]
    va, vb = claim_verdicts(a), claim_verdicts(b)
    lines += _claims_table(va, vb)
    failed = failures(found, va, vb, limits)
    if limits.any:
        lines += ["", "## Gate", ""]
        lines += [f"- FAIL: {f}" for f in failed] or ["- pass: no threshold exceeded."]
    return "\n".join(lines) + "\n", failed
