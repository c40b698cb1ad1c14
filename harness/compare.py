"""``harness compare A B``: what changed between two runs, as markdown on standard output.

A run is a run id of the results file, ``latest``, or a report's ``results.json`` (so a new
run can be held against a reference report). The comparison lists the settings and
environment that differ, then, per backend, device, variant and sweep point, the final
validation accuracy and loss of both runs (mean ± sd over seeds), the change and a verdict
from the 95% intervals (as the Claims sections judge), whether the metrics of the seeds both
ran are bit-identical, and the ratio of median epoch times.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from tabulate import tabulate

from harness.cells import group, series
from harness.errors import HarnessError
from harness.plugins import get_plugins
from harness.runs import load_run
from harness.stats import Summary
from harness.summary import backend_versions, summary_rows

Run = tuple[dict[str, Any], list[dict[str, Any]]]
METRICS = ("train_loss", "val_loss", "val_acc")
ENV_KEYS = ("python", "cpu", "cores", "threads", "git_commit")


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
        sides.append(
            {
                **flat({"suite": run["suite"], "settings": run["settings"]}),
                **flat({"env": env, "versions": backend_versions(cells)}),
            }
        )
    keys = sorted(set(sides[0]) | set(sides[1]))
    return [
        [key, _text(sides[0].get(key)), _text(sides[1].get(key))]
        for key in keys
        if sides[0].get(key) != sides[1].get(key)
    ]


def _text(value: Any) -> str:
    if value is None:
        return "-"
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def verdict(a: Summary, b: Summary) -> str:
    """``higher in B`` / ``lower in B`` when the 95% intervals do not overlap, else
    ``within noise`` (``unresolved`` with fewer than two seeds on a side)."""
    if a.n == 0 or b.n == 0:
        return "-"
    if a.n < 2 or b.n < 2:
        return "unresolved (1 seed)" if a.mean != b.mean else "same value"
    if not a.overlaps(b):
        return "higher in B" if b.mean > a.mean else "lower in B"
    return "within noise"


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


def rows(a: Run, b: Run) -> list[list[str]]:
    """One row per backend, device, variant and point found in either run."""
    suite = get_plugins().suites.get(b[0]["suite"])
    groups = []
    for _, cells in (a, b):
        groups.append({_key(r): r for r in summary_rows(cells, suite.target_acc)})
    members = [_members(cells) for _, cells in (a, b)]
    out = []
    for key in list(groups[0]) + [k for k in groups[1] if k not in groups[0]]:
        ra, rb = groups[0].get(key), groups[1].get(key)
        name = key[2] + (f" ({key[3]})" if key[3] else "")
        if ra is None or rb is None:
            out.append([key[0], key[1], name, "only in A" if rb is None else "only in B"])
            continue
        acc_a, acc_b = ra["final_val_acc"], rb["final_val_acc"]
        delta = (acc_b.mean - acc_a.mean) * 100 if acc_a.n and acc_b.n else math.nan
        time_ratio = (
            rb["median_epoch_s"] / ra["median_epoch_s"] if ra["median_epoch_s"] else math.nan
        )
        out.append(
            [
                key[0],
                key[1],
                name,
                f"{ra['ok']}/{ra['seeds']} → {rb['ok']}/{rb['seeds']}",
                f"{acc_a.text('.2f', 100)} → {acc_b.text('.2f', 100)}",
                "-" if math.isnan(delta) else f"{delta:+.2f}",
                verdict(acc_a, acc_b),
                f"{ra['final_val_loss'].text()} → {rb['final_val_loss'].text()}",
                identical(members[0].get(key, []), members[1].get(key, [])),
                "-" if math.isnan(time_ratio) else f"{time_ratio:.2f}",
            ]
        )
    return out


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
    "Δ pp",
    "verdict (95% CIs)",
    "final val loss A → B",
    "identical metrics",
    "epoch time B/A",
]


def markdown(a: Run, b: Run) -> str:
    """The comparison of runs ``a`` and ``b`` as markdown."""
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
        "Final validation accuracy and loss, mean ± sd over the ok seeds; the verdict compares "
        "95% t-intervals (a difference counts only when they do not overlap). *Identical "
        "metrics*: the seeds both runs trained have bit-identical per-epoch losses and "
        "accuracies. *Epoch time B/A*: ratio of median steady-state epoch times."
    )
    lines += ["", tabulate(rows(a, b), HEADERS, "github", disable_numparse=True)]
    return "\n".join(lines) + "\n"


def cmd_compare(args: argparse.Namespace) -> int:
    """Print (and with ``--out``, write) the comparison of two runs."""
    text = markdown(load(args.a, args.store), load(args.b, args.store))
    if args.out:
        try:
            Path(args.out).write_text(text)
        except OSError as exc:
            raise HarnessError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    print(text, end="")
    return 0
